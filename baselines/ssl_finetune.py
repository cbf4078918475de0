"""FT-SSL: fine-tune a self-supervised encoder with its own loss on the retain members."""

from __future__ import annotations

from dataclasses import dataclass

from bench.hparams import hp, int_range, log
from bench.method import register_method
from bench.tasks.ssl import SSL


@register_method("FT-SSL", tasks=(SSL,), smoke={"epochs": 2})
@dataclass(frozen=True)
class FineTuneSSL:
    """Continue the encoder's self-supervised training on D_r only (catastrophic forgetting of D_f).

    The framework's loss (NT-Xent, MoCo InfoNCE with its queue, BYOL) on two fresh views of
    retain batches, with the Original recipe's optimiser (Adam, no weight decay) [choice: lr
    0.001, a tenth of the training lr, 10 epochs like GP]; D_f is never seen.
    """

    epochs: int = hp(10, low=1, doc="passes over D_r", search=int_range(1, 50, schedule=True))  # [choice]
    lr: float = hp(1e-3, low=0.0, doc="Adam learning rate (constant)", search=log(1e-5, 1e-2), main=True)
    weight_decay: float = hp(0.0, low=0.0)
    batch_size: int = hp(512, low=2, doc="retain images per batch")

    def run(self, ctx) -> None:
        opt = ctx.adam(self.lr, self.weight_decay)
        bs = min(self.batch_size, len(ctx.retain))
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, bs, augment=False, drop_last=True):
                ctx.step(opt, ctx.ssl_loss(batch.raw))
