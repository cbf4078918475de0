"""SalUn (Fan et al., "SalUn: Empowering Machine Unlearning via Gradient-based Weight
Saliency"): Random-Label unlearning restricted to the weights most salient for D_f."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from baselines.rl import RandomLabel
from bench import sgd_fields as sgd
from bench.hparams import hp, uniform
from bench.method import UnlearnContext, register_method

MASK_SCOPES = ("global", "per_layer")


def top_fraction_masks(scores: list[torch.Tensor], fraction: float, scope: str) -> list[torch.Tensor]:
    """0/1 masks (in each score's dtype) keeping the `fraction` highest scores: int(fraction * n)
    entries over all tensors together ("global") or within each tensor ("per_layer")."""
    if scope == "per_layer":
        return [top_fraction_masks([s], fraction, "global")[0] for s in scores]
    if scope != "global":
        raise ValueError(f"unknown mask scope {scope!r}; use one of {MASK_SCOPES}")
    flat = torch.cat([s.detach().flatten() for s in scores])
    keep = int(fraction * flat.numel())
    chosen = torch.zeros_like(flat)
    if keep > 0:
        chosen[torch.topk(flat, keep, sorted=False).indices] = 1
    return [m.view_as(s) for m, s in zip(torch.split(chosen, [s.numel() for s in scores]), scores)]


def masked_update_hook(params: list[torch.Tensor], masks: list[torch.Tensor], weight_decay: float) -> Callable[[], None]:
    """Runs between backward and the optimiser step (which itself has weight_decay=0):
    grad <- (grad + weight_decay * theta) * mask. A masked-out weight then gets a zero
    gradient on every step, so its momentum buffer stays zero and it never moves."""

    def apply() -> None:
        live = [(p, p.grad, m) for p, m in zip(params, masks) if p.grad is not None]
        if not live:
            return
        weights, grads, keep = map(list, zip(*live))
        if weight_decay:
            torch._foreach_add_(grads, weights, alpha=weight_decay)
        torch._foreach_mul_(grads, keep)

    return apply


@register_method("SalUn", smoke={"epochs": 6})
@dataclass(frozen=True)
class SalUn(RandomLabel):
    """Saliency mask from |grad of CE on D_f|, then Random-Label unlearning of the masked weights.

    Mask (SalUn code, `generate_mask.py`): the gradient of CE over one pass of D_f is
    accumulated (model in eval mode, training augmentation) and its absolute value
    ranked over all parameters together; the top `mask_ratio` fraction (0.5, the
    paper's default "with_0.5" mask) is updated, the rest stays bit-identical
    (weight decay is added to the gradient before masking, the optimiser has none).
    Unlearning: Random-Label epochs as the `RL` method. Defaults for CoUn Table 2
    (CIFAR-10, ResNet-18, 10% random), whose SalUn row costs 8.66 PFLOPs = 51.7
    passes over D (D_f + D_r, 6F each): 50 epochs, the CoUn protocol's cap
    (~8.4 PFLOPs with the mask pass); lr 0.013 (SalUn's CIFAR-10 command), cosine to
    1e-4 (CoUn protocol).
    """

    epochs: int = sgd.epochs(50, doc="Random-Label epochs, each a pass over D_f (random labels) and D_r")
    lr_schedule: str = sgd.lr_schedule("cosine", doc="[choice] cosine to final_lr (CoUn) or constant (SalUn code)")
    weight_decay: float = sgd.weight_decay(doc="applied to masked-in weights only")
    mask_ratio: float = hp(0.5, low=0.0, high=1.0, search=uniform(0.1, 0.9),
                           doc="fraction of weights updated (top |grad| on D_f; SalUn sweeps 0.1-0.9)")
    mask_scope: str = hp("global", choices=MASK_SCOPES,
                         doc="[choice] rank saliency over all weights (reference code) or within each tensor")
    mask_augment: bool = hp(True, doc="[choice] augment D_f in the mask pass (the reference uses the train transform)")

    def saliency_mask(self, ctx: UnlearnContext) -> list[torch.Tensor]:
        """One forward+backward pass over D_f (counted); masks in `model.parameters()` order."""
        model = ctx.model
        params = list(model.parameters())
        model.eval()
        model.zero_grad(set_to_none=True)
        for batch in ctx.batches(ctx.forget, self.batch_size, augment=self.mask_augment):
            # summed CE: the accumulated .grad is the gradient of CE over the whole of D_f
            F.cross_entropy(ctx.logits(batch.x), batch.y, reduction="sum").backward()
        saliency = [p.grad.abs() if p.grad is not None else torch.zeros_like(p) for p in params]
        model.zero_grad(set_to_none=True)
        model.train()
        return top_fraction_masks(saliency, self.mask_ratio, self.mask_scope)

    def unlearn(self, ctx: UnlearnContext, masks: list[torch.Tensor]) -> None:
        """Random-Label epochs updating only the weights where `masks` is 1."""
        only_masked = masked_update_hook(list(ctx.model.parameters()), masks, self.weight_decay)
        self.random_label_epochs(ctx, optimizer_weight_decay=0.0, before_step=only_masked)

    def run(self, ctx: UnlearnContext) -> None:
        masks = self.saliency_mask(ctx)
        kept = torch.stack([m.sum() for m in masks]).sum().item()  # one sync, before training
        ctx.note(mask_kept=int(kept), mask_total=sum(m.numel() for m in masks))
        self.unlearn(ctx, masks)
