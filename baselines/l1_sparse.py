"""l1-sparse (Jia et al., "Model Sparsity Can Simplify Machine Unlearning"): fine-tune on
the retain set with an l1 penalty on the weights whose weight decays linearly to 0."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench import sgd_fields as sgd
from bench.hparams import hp, log
from bench.method import UnlearnContext, register_method

DECAY_UNITS = ("epoch", "step")


def l1_weight(gamma: float, t: int, horizon: int) -> float:
    """gamma * (1 - t / horizon) for t < horizon, else 0 (t counts epochs or steps)."""
    if horizon <= 0 or t >= horizon:
        return 0.0
    return gamma * (1.0 - t / horizon)


def l1_norm(model: nn.Module) -> torch.Tensor:
    """||theta||_1 over every parameter (weights, biases, BatchNorm affines), as the reference code."""
    return torch.stack([p.abs().sum() for p in model.parameters()]).sum()


@register_method("l1-sparse", smoke={"epochs": 8})
@dataclass(frozen=True)
class L1Sparse:
    """FT on D_r plus gamma_t * ||theta||_1, gamma_t = gamma * (1 - t/T) over the l1 epochs.

    Follows the Unlearn-Sparse / SalUn code (`FT_l1`): the penalty covers all
    parameters and its weight is constant within an epoch, decaying linearly
    per epoch over the first `epochs - no_l1_epochs` epochs (option: per step).
    Defaults for CoUn Table 2 (CIFAR-10, ResNet-18, 10% random): its l1-sparse row
    costs 6.92 PFLOPs = 6.92e15 / (6 F x 45,000) = 46 passes over D_r, hence 46
    epochs; gamma 5e-4 and lr 0.01 are the values of the public Unlearn-Sparse
    usage for CIFAR-10 (gamma inside methods.md's [1e-4, 1e-1]; lr inside CoUn's
    [0.01, 0.1]); cosine to 1e-4 (CoUn protocol).
    """

    epochs: int = sgd.epochs(46, doc="passes over D_r (46: CoUn Table 2's l1-sparse cost)")
    gamma: float = hp(5e-4, low=0.0, search=log(1e-4, 1e-1), doc="initial weight of the l1 penalty (methods.md: [1e-4, 1e-1])")
    no_l1_epochs: int = hp(0, low=0, doc="final epochs trained without the penalty (T = epochs - no_l1_epochs)")
    decay_per: str = hp("epoch", choices=DECAY_UNITS,
                        doc="[choice] gamma decays once per epoch (reference code) or every step")
    lr: float = sgd.lr(0.01)
    final_lr: float = sgd.final_lr()
    momentum: float = sgd.momentum()
    weight_decay: float = sgd.weight_decay()
    batch_size: int = sgd.batch_size(256)

    def penalty_weights(self, steps_per_epoch: int) -> list[float]:
        """gamma_t for every optimiser step of the run, in order."""
        l1_epochs = max(self.epochs - self.no_l1_epochs, 0)
        if self.decay_per == "epoch":
            return [l1_weight(self.gamma, e, l1_epochs) for e in range(self.epochs) for _ in range(steps_per_epoch)]
        return [l1_weight(self.gamma, s, l1_epochs * steps_per_epoch) for s in range(self.epochs * steps_per_epoch)]

    def run(self, ctx: UnlearnContext) -> None:
        model = ctx.model
        steps = ctx.steps_per_epoch(ctx.retain, self.batch_size)
        gammas = self.penalty_weights(steps)
        opt = ctx.sgd(model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = ctx.cosine(opt, len(gammas), self.final_lr)
        # gamma_t is a step input (a device scalar), so the l1 term is part of the captured step;
        # at gamma_t = 0 it adds exactly zero to the loss and the gradients
        step = ctx.train_step(opt, lambda x, y, gamma: F.cross_entropy(ctx.logits(x), y) + gamma * l1_norm(model), sched)
        t = 0
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                step(batch.x, batch.y, gammas[t])
                t += 1
        ctx.note(l1_gamma_at_epoch_start=gammas[::steps])
