"""Pieces several baselines share: endless batches of a set, the learning-rate
schedule choice, and random relabelling."""

from __future__ import annotations

from typing import Iterator

import torch

from bench.data.device_data import DeviceData
from bench.engine import Batch
from bench.method import UnlearnContext
from bench.sgd_fields import SCHEDULES  # noqa: F401  (re-exported for the method files)

LABEL_DRAWS = ("other", "any")


def cycle_batches(ctx: UnlearnContext, data: DeviceData, batch_size: int) -> Iterator[Batch]:
    """Batches of `data` forever, reshuffled on every pass (the reference code's
    `zip(retain_loader, cycle(forget_loader))`, without itertools.cycle's caching)."""
    if len(data) == 0:
        raise ValueError(f"{data.name or 'data'} is empty: nothing to cycle over")
    while True:
        yield from ctx.batches(data, batch_size)


def schedule(ctx: UnlearnContext, optimizer: torch.optim.Optimizer, kind: str, total_steps: int, final_lr: float):
    """A per-step scheduler for `kind` ("cosine" to `final_lr`), or None for a constant lr."""
    if kind == "cosine":
        return ctx.cosine(optimizer, total_steps, final_lr)
    if kind == "constant":
        return None
    raise ValueError(f"unknown schedule {kind!r}; use one of {SCHEDULES}")


def random_labels(labels: torch.Tensor, num_classes: int, generator: torch.Generator, draw: str = "other") -> torch.Tensor:
    """Random labels for a batch, drawn on the labels' device.

    "other": uniform over the C-1 classes that are not the true label (a random
    non-zero offset modulo C), so a sample never keeps its own label.
    "any": uniform over all C classes (SalUn's reference code, `randint(0, C)`).
    """
    if draw == "other":
        offset = torch.randint(1, num_classes, labels.shape, device=labels.device, generator=generator)
        return (labels + offset) % num_classes
    if draw == "any":
        return torch.randint(0, num_classes, labels.shape, device=labels.device, generator=generator)
    raise ValueError(f"unknown label draw {draw!r}; use one of {LABEL_DRAWS}")



RL_ORDERS = ("forget_then_retain", "mixed")


class RandomLabelEpochs:
    """The batches of one Random-Label epoch: D_f with random labels and D_r with its own.

    "forget_then_retain": a pass over D_f, then a pass over D_r (SalUn code, CIFAR-10
    branch; methods.md). "mixed": one shuffled pass over D_f and D_r together (SalUn
    code, CIFAR-100 / TinyImageNet branch). Labels are redrawn for every batch.
    """

    def __init__(self, ctx: UnlearnContext, batch_size: int, order: str, draw: str):
        if order not in RL_ORDERS:
            raise ValueError(f"unknown order {order!r}; use one of {RL_ORDERS}")
        self.ctx, self.batch_size, self.order, self.draw = ctx, batch_size, order, draw
        self._both: DeviceData | None = None
        if order == "mixed":
            f, r = ctx.forget, ctx.retain
            self._both = DeviceData(torch.cat([f.images, r.images]), torch.cat([f.labels, r.labels]),
                                    torch.cat([f.index, r.index]), "forget+retain")

    def steps(self) -> int:
        ctx, bs = self.ctx, self.batch_size
        if self._both is not None:
            return ctx.steps_per_epoch(self._both, bs)
        return ctx.steps_per_epoch(ctx.forget, bs) + ctx.steps_per_epoch(ctx.retain, bs)

    def relabel(self, labels: torch.Tensor) -> torch.Tensor:
        return random_labels(labels, self.ctx.num_classes, self.ctx.generator, self.draw)

    def __iter__(self) -> Iterator[tuple[Batch, torch.Tensor, torch.Tensor]]:
        """(batch, training targets, which samples are forget samples) for one epoch."""
        ctx, bs = self.ctx, self.batch_size
        if self._both is None:
            for batch in ctx.batches(ctx.forget, bs):
                yield batch, self.relabel(batch.y), torch.ones_like(batch.y, dtype=torch.bool)
            for batch in ctx.batches(ctx.retain, bs):
                yield batch, batch.y, torch.zeros_like(batch.y, dtype=torch.bool)
            return
        n_forget = len(ctx.forget)
        for batch in ctx.batches(self._both, bs):
            is_forget = batch.pos < n_forget
            yield batch, torch.where(is_forget, self.relabel(batch.y), batch.y), is_forget
