"""What a method sees on the ssl task: the encoder, the members and non-members, and the tools."""

from __future__ import annotations

import torch

from bench.data.device_data import DeviceData
from bench.method import UnlearnContext
from bench.tasks.ssl import SSL
from bench.tasks.ssl.objective import Objective, adam, network_input
from bench.views import views


class SSLContext(UnlearnContext):
    """`ctx.model` is an SSLModel (its `features(x)` / `ctx.logits(x)` is the encoder's output D(x));
    `ctx.retain` / `ctx.forget` are the retain / forget members, `ctx.test` the non-members (D_t,
    audited: never train on it), `ctx.nonmember_pool` training images outside the members
    (disjoint from every audited set: the GP full form's non-members). `ctx.retrain()` loads the
    Retrain encoder (trained on the retain members only) with its training's cost."""

    task = SSL

    def __init__(self, *, objective: Objective, nonmember_pool: DeviceData, **kwargs):
        super().__init__(**kwargs)
        self.objective = objective
        self.nonmember_pool = nonmember_pool

    def ssl_loss(self, raw: torch.Tensor, *, update: bool = True) -> torch.Tensor:
        """The framework's loss on two fresh training views of the uint8 images `raw` (MoCo's
        momentum step and enqueue, BYOL's EMA, when `update`)."""
        return self.objective.loss(self.model, raw, self.generator, update=update)

    def view(self, raw: torch.Tensor, augment: bool = True) -> torch.Tensor:
        """One training view (the framework's augmentation) of the uint8 images, as network input."""
        if not augment:
            return self.engine.to_input(raw, None, augment=False)
        return network_input(self.engine, views(raw, self.objective.view_spec, self.generator))

    def adam(self, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
        return adam(self.model, lr, weight_decay)

    def trainable(self) -> list[torch.nn.Parameter]:
        """The parameters a method may change (online network and BYOL's predictor; never the target)."""
        return self.model.trainable()

    def train_mode(self) -> None:
        self.model.train()
