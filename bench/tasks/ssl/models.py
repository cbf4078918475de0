"""Self-supervised encoders: a backbone of bench.models with its framework's heads.

`SSLModel` holds the online network (backbone -> projector [-> predictor for BYOL]) and, for
MoCo and BYOL, the momentum (target) copy of backbone and projector, plus MoCo's queue of
normalised keys. Everything (weights, target, queue, its pointer) is in the state dict, so a
checkpoint resumes the framework exactly. The backbone's pooled features are the encoder's
output D(x) that the audits and the gradient penalty use.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import ConfigError
from bench.models import build_model
from bench.tasks.ssl import FRAMEWORKS


def parse_model_name(name: str) -> tuple[str, str]:
    """'simclr-resnet18' -> ('simclr', 'resnet18')."""
    framework, _, backbone = name.partition("-")
    if framework not in FRAMEWORKS or not backbone:
        raise ConfigError(f"ssl model {name!r}: write <framework>-<backbone>, framework one of {', '.join(FRAMEWORKS)}")
    return framework, backbone


def mlp(d_in: int, hidden: int, d_out: int, batchnorm: bool) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Linear(d_in, hidden, bias=not batchnorm)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(hidden))
    layers += [nn.ReLU(inplace=True), nn.Linear(hidden, d_out)]
    return nn.Sequential(*layers)


class Tower(nn.Module):
    """backbone -> projector; `backbone` is the attribute SampleCounter hooks."""

    def __init__(self, backbone: nn.Module, projector: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.projector = projector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.backbone(x))


class SSLModel(nn.Module):
    def __init__(self, framework: str, backbone: nn.Module, feature_dim: int, hidden: int, dim: int, queue: int):
        super().__init__()
        self.framework = framework
        self.feature_dim = feature_dim
        # [choice] heads: SimCLR and BYOL MLPs with BatchNorm (their papers), MoCo v2's MLP without
        projector = mlp(feature_dim, hidden, dim, batchnorm=framework != "moco")
        self.online = Tower(backbone, projector)
        self.predictor = mlp(dim, hidden, dim, batchnorm=True) if framework == "byol" else None
        self.target: Tower | None = None
        if framework in ("moco", "byol"):
            self.target = copy.deepcopy(self.online)
            for p in self.target.parameters():
                p.requires_grad_(False)
        if framework == "moco":
            self.register_buffer("queue", F.normalize(torch.randn(queue, dim), dim=1))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.int64))

    @property
    def backbone(self) -> nn.Module:
        return self.online.backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """D(x): the backbone's pooled features."""
        return self.online.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def trainable(self) -> list[nn.Parameter]:
        params = list(self.online.parameters())
        if self.predictor is not None:
            params += list(self.predictor.parameters())
        return params

    @torch.no_grad()
    def momentum_update(self, m: float) -> None:
        """target <- m * target + (1 - m) * online (parameters; BatchNorm buffers run on their own)."""
        if self.target is None:
            return
        t = [p for p in self.target.parameters()]
        o = [p.detach() for p in self.online.parameters()]
        torch._foreach_mul_(t, m)
        torch._foreach_add_(t, o, alpha=1 - m)

    @torch.no_grad()
    def enqueue(self, keys: torch.Tensor) -> None:
        """Write normalised keys at the queue pointer (wrapping), advance the pointer; no host sync."""
        k = self.queue.shape[0]
        n = keys.shape[0]
        if n > k:
            keys, n = keys[-k:], k
        idx = (self.queue_ptr + torch.arange(n, device=keys.device)) % k
        self.queue.index_copy_(0, idx, keys.detach().to(self.queue.dtype))
        self.queue_ptr.copy_((self.queue_ptr + n) % k)


def build_ssl_model(name: str, channels: int, num_classes: int, image_size: int, seed: int,
                    hidden: int, dim: int, queue: int) -> SSLModel:
    framework, backbone_name = parse_model_name(name)
    base = build_model(backbone_name, channels, num_classes, image_size, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        return SSLModel(framework, base.backbone, base.feature_dim, hidden, dim, queue)
