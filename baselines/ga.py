"""GA: gradient ascent on the forget set (Thudi et al.; the SalUn / Unlearn-Sparse baseline)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from baselines._common import schedule
from bench import sgd_fields as sgd
from bench.hparams import log
from bench.method import UnlearnContext, register_method


def ascent_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """-CE: minimising it ascends the forget set's cross-entropy."""
    return -F.cross_entropy(logits, labels)


@register_method("GA")
@dataclass(frozen=True)
class GradientAscent:
    """Maximise CE on D_f; D_r is never seen.

    Iteration-based on D_f: an epoch is one pass over the forget set. Defaults are
    the SalUn / Unlearn-Sparse CIFAR-10 command (`--unlearn GA --unlearn_epochs 5
    --unlearn_lr 0.0001`, batch 256, SGD momentum 0.9, wd 5e-4) with its effectively
    constant lr (its MultiStepLR milestones 91,136 are never reached); CoUn does not
    report GA. Cosine is offered as an option.
    """

    epochs: int = sgd.epochs(5, doc="passes over D_f")
    lr: float = sgd.lr(1e-4, doc="learning rate", search=log(1e-5, 1e-2))  # [choice] around the SalUn command's 1e-4
    lr_schedule: str = sgd.lr_schedule("constant", doc="[choice] constant (reference code) or cosine to final_lr")
    final_lr: float = sgd.final_lr(0.0, doc="final lr of the cosine schedule")
    momentum: float = sgd.momentum()
    weight_decay: float = sgd.weight_decay()
    batch_size: int = sgd.batch_size(256)

    def run(self, ctx: UnlearnContext) -> None:
        opt = ctx.sgd(ctx.model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        total = self.epochs * ctx.steps_per_epoch(ctx.forget, self.batch_size)
        sched = schedule(ctx, opt, self.lr_schedule, total, self.final_lr)
        step = ctx.train_step(opt, lambda x, y: ascent_loss(ctx.logits(x), y), sched)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.forget, self.batch_size):
                step(batch.x, batch.y)
