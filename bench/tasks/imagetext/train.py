"""Contrastive training of a dual encoder from scratch (Original and Retrain).

The profile's [train] table is read as: epochs, lr (peak), weight_decay, batch_size, and
momentum as AdamW's beta1 (beta2 0.98). Schedule: linear warm-up over `warmup_fraction`
of the steps, then cosine decay to 0 (milestones and gamma, the classifier's step
schedule, are not used). Weight decay only on matrices and kernels (not on biases, norms,
the logit scale, the curvature or the alphas). Batches: the harness's engine (uint8 on the
device, batched crop/flip); one caption per image drawn on the device.
"""

from __future__ import annotations

import math

import torch

from bench.engine import Engine, TrainRecipe
from bench.data.device_data import DeviceData
from bench.progress import SILENT, Progress
from bench.tasks.imagetext.captions import CaptionBank
from bench.tasks.imagetext.models import ImageTextModel

BETA2 = 0.98


def adamw(model: ImageTextModel, lr: float, weight_decay: float, beta1: float = 0.9) -> torch.optim.AdamW:
    """AdamW on `model`'s trainable parameters; every step ends with the model's scalar bounds."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    rest = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]
    fused = bool(params) and all(p.is_cuda for p in params)  # one kernel per step on the GPU
    opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(beta1, BETA2), fused=fused or None)
    opt.register_step_post_hook(lambda *_: model.clamp_scalars_())
    return opt


def warmup_cosine(opt: torch.optim.Optimizer, total_steps: int, warmup_steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def drop_last_for(n: int, batch_size: int) -> bool:
    """Full batches only (a constant number of negatives), unless the set is smaller than one."""
    return n >= batch_size


def pair_loss(engine: Engine, model: ImageTextModel, x: torch.Tensor, tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    with engine.autocast():
        images = model.encode_image(x)
        texts = model.encode_text(tokens)
    return model.loss(images, texts, ids)


def train_contrastive(engine: Engine, model: ImageTextModel, data: DeviceData, bank: CaptionBank, recipe: TrainRecipe,
                      generic_fraction: float, warmup_fraction: float, seed: int, progress: Progress = SILENT,
                      desc: str = "train") -> dict:
    """Train `model` in place on `data` (images with their class labels). Returns stats."""
    generator = engine.generator(seed)
    drop_last = drop_last_for(len(data), recipe.batch_size)
    steps = recipe.epochs * engine.steps_per_epoch(len(data), recipe.batch_size, drop_last)
    opt = adamw(model, recipe.lr, recipe.weight_decay, recipe.momentum)
    sched = warmup_cosine(opt, steps, int(round(warmup_fraction * steps)))
    model.train()

    def one_epoch():
        for batch in engine.batches(data, recipe.batch_size, generator, drop_last=drop_last):
            tokens, ids = bank.sample(batch.y, generator, generic_fraction)
            loss = pair_loss(engine, model, batch.x, tokens, ids)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            yield loss.detach()

    return engine.train_epochs(recipe.epochs, one_epoch, progress=progress, desc=desc)
