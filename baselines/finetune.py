"""FT: fine-tune the Original model on the retain set (catastrophic forgetting of D_f)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F

from bench.hparams import hp
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

    epochs: int = hp(42, low=1, doc="passes over D_r (42: CoUn Table 2's FT cost)")
    lr: float = hp(0.02, low=0.0, doc="initial learning rate (cosine decay to final_lr)")
    final_lr: float = hp(1e-4, low=0.0, doc="learning rate at the end of the cosine schedule")
    momentum: float = hp(0.9, low=0.0, high=0.999)
    weight_decay: float = hp(5e-4, low=0.0)
    batch_size: int = hp(256, low=1)

    def run(self, ctx: UnlearnContext) -> None:
        opt = ctx.sgd(ctx.model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = ctx.cosine(opt, self.epochs * ctx.steps_per_epoch(ctx.retain, self.batch_size), self.final_lr)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                loss = F.cross_entropy(ctx.logits(batch.x), batch.y)
                ctx.step(opt, loss, sched)
