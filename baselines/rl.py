"""RL: Random-Label unlearning (Golatkar et al.; the SalUn baseline): train on the forget
set with random wrong labels and on the retain set with its own labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch.nn.functional as F

from baselines._common import LABEL_DRAWS, RL_ORDERS, RandomLabelEpochs, schedule
from bench import sgd_fields as sgd
from bench.hparams import hp, log
from bench.method import UnlearnContext, register_method


@register_method("RL", smoke={"epochs": 4})
@dataclass(frozen=True)
class RandomLabel:
    """Each epoch: D_f with random labels, then D_r; cross-entropy, SGD, all weights.

    SalUn without the saliency mask. Iteration-based on D_f and D_r: an epoch is one
    pass over each. Defaults are SalUn's CIFAR-10 random-forgetting command
    (`--unlearn RL --unlearn_epochs 10 --unlearn_lr 0.013`, batch 256, SGD momentum
    0.9, wd 5e-4, effectively constant lr); CoUn does not report RL. A forget sample's
    label is drawn among the C-1 wrong classes (methods.md: "random wrong labels");
    the reference code's `randint(0, C)` is the "any" option.
    """

    epochs: int = sgd.epochs(10, doc="epochs, each a pass over D_f (random labels) and D_r")
    lr: float = sgd.lr(0.013, doc="learning rate", search=log(1e-3, 0.1))  # [choice] widened below 0.01: RL trains on wrong labels
    lr_schedule: str = sgd.lr_schedule("constant", doc="[choice] constant (reference code) or cosine to final_lr")
    final_lr: float = sgd.final_lr(doc="final lr of the cosine schedule")
    order: str = hp("forget_then_retain", choices=RL_ORDERS,
                    doc="[choice] D_f pass then D_r pass (CIFAR-10 code), or one mixed shuffled pass")
    label_draw: str = hp("other", choices=LABEL_DRAWS,
                         doc="[choice] random label among the other C-1 classes, or any of C (reference code)")
    momentum: float = sgd.momentum()
    weight_decay: float = sgd.weight_decay()
    batch_size: int = sgd.batch_size(256)

    def run(self, ctx: UnlearnContext) -> None:
        self.random_label_epochs(ctx, optimizer_weight_decay=self.weight_decay)

    def random_label_epochs(self, ctx: UnlearnContext, optimizer_weight_decay: float,
                            before_step: Callable[[], None] | None = None) -> None:
        """`epochs` Random-Label epochs over all weights; `before_step` may edit the gradients."""
        epoch_batches = RandomLabelEpochs(ctx, self.batch_size, self.order, self.label_draw)
        opt = ctx.sgd(ctx.model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=optimizer_weight_decay)
        sched = schedule(ctx, opt, self.lr_schedule, self.epochs * epoch_batches.steps(), self.final_lr)
        step = ctx.train_step(opt, lambda x, y: F.cross_entropy(ctx.logits(x), y), sched, before_step=before_step)
        for _ in ctx.epochs(self.epochs):
            for batch, targets, _ in epoch_batches:
                step(batch.x, targets)
