"""FT: fine-tune the Original model on the retain set (catastrophic forgetting of D_f)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from bench import sgd_fields as sgd
from bench.method import UnlearnContext, register_method


@register_method("FT", smoke={"epochs": 8})
@dataclass(frozen=True)
class FineTune:
    """Fine-tune on D_r with cross-entropy, SGD and a cosine schedule to 1e-4.

    Defaults: the CoUn protocol (methods.md, "Standard settings": cosine to 1e-4,
    at most 50 epochs, lr in [0.01, 0.1]) sized to CoUn Table 2 (CIFAR-10,
    ResNet-18, 10% random): its FT row costs 6.32 PFLOPs = 6.32e15 / (6 F x 45,000)
    = 42 passes over D_r, hence 42 epochs. lr 0.02 sits in the tuned range
    (CoUn does not publish its tuned value).
    """

    epochs: int = sgd.epochs(42, doc="passes over D_r (42: CoUn Table 2's FT cost)")
    lr: float = sgd.lr(0.02)
    final_lr: float = sgd.final_lr()
    momentum: float = sgd.momentum()
    weight_decay: float = sgd.weight_decay()
    batch_size: int = sgd.batch_size(256)

    def run(self, ctx: UnlearnContext) -> None:
        opt = ctx.sgd(ctx.model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = ctx.cosine(opt, self.epochs * ctx.steps_per_epoch(ctx.retain, self.batch_size), self.final_lr)
        step = ctx.train_step(opt, lambda x, y: F.cross_entropy(ctx.logits(x), y), sched)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                step(batch.x, batch.y)
