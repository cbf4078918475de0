"""One framework's training objective on a batch of images, and the Original/Retrain loop.

`Objective.loss(model, raw)` draws two views of the uint8 images on the device, runs the
framework (momentum update and MoCo's enqueue included when `update`), and returns the loss.
Passes: SimCLR 2N trained; MoCo N trained (queries) + N forward through the key encoder;
BYOL 2N trained + 2N forward through the target. SampleCounter sees each of them.

MoCo/BYOL's momentum step runs at the start of each step (before the forward), not after the
optimiser's step as in their papers: the target lags one step, the same EMA otherwise. MoCo
runs without shuffle-BN (one device; the AC code's batch shuffle is a no-op there too).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
import torch.nn.functional as F

from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.errors import CellFailure
from bench.progress import SILENT, Progress
from bench.tasks.ssl.losses import byol_regression, moco_infonce, nt_xent
from bench.tasks.ssl.models import SSLModel
from bench.views import ViewSpec, views


def network_input(engine: Engine, images01: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1] -> the normalised network input (channels_last on CUDA)."""
    x = engine.normalize(images01 * 255.0)
    return x.contiguous(memory_format=torch.channels_last) if engine.channels_last else x


@dataclass(frozen=True)
class Objective:
    framework: str
    engine: Engine
    view_spec: ViewSpec
    simclr_temperature: float = 0.5
    moco_temperature: float = 0.2
    moco_momentum: float = 0.99
    byol_momentum: float = 0.99

    @classmethod
    def from_params(cls, framework: str, engine: Engine, image_size: int, tp: Mapping[str, Any]) -> "Objective":
        return cls(framework, engine, ViewSpec(size=image_size, scale=(tp["crop_scale"], 1.0)),
                   tp["simclr_temperature"], tp["moco_temperature"], tp["moco_momentum"], tp["byol_momentum"])

    def two_views(self, raw: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return (network_input(self.engine, views(raw, self.view_spec, generator)),
                network_input(self.engine, views(raw, self.view_spec, generator)))

    def loss(self, model: SSLModel, raw: torch.Tensor, generator: torch.Generator, *, update: bool = True,
             reduction: str = "mean") -> torch.Tensor:
        """The framework's loss on two fresh views of `raw` (float32). `update`: MoCo/BYOL momentum
        step before and MoCo's enqueue after (training); off for measuring."""
        v1, v2 = self.two_views(raw, generator)
        return self.loss_on_views(model, v1, v2, update=update, reduction=reduction)

    def loss_on_views(self, model: SSLModel, v1: torch.Tensor, v2: torch.Tensor, *, update: bool = True,
                      reduction: str = "mean") -> torch.Tensor:
        return self.loss_and_anchor(model, v1, v2, update=update, reduction=reduction)[0]

    def loss_and_anchor(self, model: SSLModel, v1: torch.Tensor, v2: torch.Tensor, *, update: bool = True,
                        reduction: str = "mean") -> tuple[torch.Tensor, torch.Tensor]:
        """`loss_on_views`, and the online embedding of view 1 that the loss aligns with view 2's
        (SimCLR: the projection z1; MoCo: the query q; BYOL: the prediction p1), unnormalised."""
        with self.engine.autocast():
            if self.framework == "simclr":
                z1 = model.online(v1)
                return nt_xent(z1, model.online(v2), self.simclr_temperature, reduction), z1
            if self.framework == "moco":
                if update:
                    model.momentum_update(self.moco_momentum)
                q = model.online(v1)
                with torch.no_grad():
                    k = F.normalize(model.target(v2).float(), dim=1)
                loss = moco_infonce(q, k, model.queue.clone(), self.moco_temperature, reduction)
                if update:
                    model.enqueue(k)
                return loss, q
            if update:
                model.momentum_update(self.byol_momentum)
            p1, p2 = model.predictor(model.online(v1)), model.predictor(model.online(v2))
            with torch.no_grad():
                t1, t2 = model.target(v1), model.target(v2)
            per_sample = byol_regression(p1, t2) + byol_regression(p2, t1)
            return (per_sample.mean() if reduction == "mean" else per_sample), p1

    def positive_embedding(self, model: SSLModel, v: torch.Tensor) -> torch.Tensor:
        """The embedding a view is aligned *to* in the loss: SimCLR the online projection (with
        gradient); MoCo the key encoder's projection, BYOL the target's (no gradient)."""
        with self.engine.autocast():
            if self.framework == "simclr":
                return model.online(v)
            with torch.no_grad():
                return model.target(v)


def adam(model: SSLModel, lr: float, weight_decay: float) -> torch.optim.Adam:
    return torch.optim.Adam(model.trainable(), lr=lr, weight_decay=weight_decay)


def train_batch_size(n: int, batch_size: int) -> int:
    """The batch size actually used: never larger than the set (BatchNorm needs 2 samples)."""
    if n < 2:
        raise CellFailure(f"a self-supervised encoder needs at least 2 training images, got {n}")
    return min(batch_size, n)


def train_ssl(engine: Engine, model: SSLModel, objective: Objective, data: DeviceData, tp: Mapping[str, Any],
              seed: int, progress: Progress = SILENT, desc: str = "train") -> dict:
    """Train `model` in place on `data`: Adam(lr, weight decay), constant lr, full batches only."""
    generator = engine.generator(seed)
    opt = adam(model, tp["lr"], tp["weight_decay"])
    bs = train_batch_size(len(data), tp["batch_size"])
    model.train()

    def one_epoch():
        for batch in engine.batches(data, bs, generator, augment=False, drop_last=True):
            loss = objective.loss(model, batch.raw, generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            yield loss.detach()

    return engine.train_epochs(tp["epochs"], one_epoch, progress=progress, desc=desc)
