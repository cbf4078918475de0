"""GA-SSL: gradient ascent on the forget members' self-supervised loss."""

from __future__ import annotations

from dataclasses import dataclass

from bench.hparams import hp, int_range, log
from bench.method import register_method
from bench.tasks.ssl import SSL


@register_method("GA-SSL", tasks=(SSL,), smoke={"epochs": 2})
@dataclass(frozen=True)
class GradientAscentSSL:
    """Maximise the encoder's own loss on D_f (D_r is never seen).

    The framework's loss on two fresh views of forget batches, negated; Adam, no weight decay
    [choice: lr 1e-4 and 5 epochs, GA's classifier schedule length; ascent is unbounded, so
    the lr and epochs decide how far it goes].
    """

    epochs: int = hp(5, low=1, doc="passes over D_f", search=int_range(1, 50, schedule=True))  # [choice]
    lr: float = hp(1e-4, low=0.0, doc="Adam learning rate (constant)", search=log(1e-5, 1e-2), main=True)
    weight_decay: float = hp(0.0, low=0.0)
    batch_size: int = hp(512, low=2, doc="forget images per batch")

    def run(self, ctx) -> None:
        opt = ctx.adam(self.lr, self.weight_decay)
        bs = min(self.batch_size, len(ctx.forget))
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.forget, bs, augment=False, drop_last=True):
                ctx.step(opt, -ctx.ssl_loss(batch.raw))
