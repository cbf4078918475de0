"""HCU: contrastive unlearning in the Poincare ball (Leone 2024, repo FFMasterSlave/Progetto-DL)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.hparams import hp, uniform
from bench.method import UnlearnContext, register_method, register_preset
from methods._contrastive import STEP_SEMANTICS, ContrastiveUnlearning, Geometry

with warnings.catch_warnings():  # geoopt decorates helpers with torch.jit.script, deprecated in torch 2.x
    warnings.simplefilter("ignore", FutureWarning)
    import geoopt

HYPERBOLIC_EMBEDDINGS = ("normalized", "scaled")


class PoincareGeometry:
    """`s_ia = -d_c(x_i, x_a) / tau` with `x = expmap0_c(v)` in geoopt's PoincareBall(c).

    `normalized` (reference): `v = z / ||z||`, so every point lies on one sphere and
    the distance is a monotone function of the angle. `scaled`: `v = k * z` with one
    scale `k` for all samples, so each feature keeps its own radius; `k` is set on
    the first batch so that the mean feature gets tangent norm `radius`, and can be
    learned (as `k * exp(log_scale)`). Everything runs in float32 with autocast off;
    expmap0 projects onto the ball (geoopt's 4e-3 margin in float32) and geoopt's
    artanh is clamped, so huge or bf16-born features give finite distances.
    """

    name = "poincare"

    def __init__(self, curvature: float, embedding: str, radius: float, learn_scale: bool, device: torch.device):
        if embedding not in HYPERBOLIC_EMBEDDINGS:
            raise ValueError(f"unknown hyperbolic embedding {embedding!r}")
        self.ball = geoopt.PoincareBall(c=curvature).to(device)
        self.curvature = curvature
        self.embedding = embedding
        self.radius = radius
        self.device = device
        self.log_scale = nn.Parameter(torch.zeros((), device=device), requires_grad=learn_scale)
        self._mean_norm: torch.Tensor | None = None  # mean feature norm of the first batch (scaled)

    def _autocast_off(self):
        return torch.autocast(device_type=self.device.type, enabled=False)

    def tangent(self, z: torch.Tensor) -> torch.Tensor:
        z = z.float()
        if self.embedding == "normalized":
            return F.normalize(z, dim=1)
        if self._mean_norm is None:
            self._mean_norm = z.detach().norm(dim=1).mean().clamp_min(1e-12)
        return z * (self.radius / self._mean_norm * self.log_scale.exp())

    def points(self, z: torch.Tensor) -> torch.Tensor:
        """Embeddings mapped into the ball (float32)."""
        with self._autocast_off():
            return self.ball.expmap0(self.tangent(z))

    def similarity(self, anchors: torch.Tensor, others: torch.Tensor, temperature: float) -> torch.Tensor:
        with self._autocast_off():
            if self.embedding == "scaled" and self._mean_norm is None:
                self._mean_norm = torch.cat([anchors, others]).detach().float().norm(dim=1).mean().clamp_min(1e-12)
            x, y = self.points(anchors), self.points(others)
            return -self.ball.dist(x[:, None, :], y[None, :, :]) / temperature

    def parameters(self) -> list[nn.Parameter]:
        return [self.log_scale] if self.log_scale.requires_grad else []

    def describe(self) -> dict:
        facts = {"geometry": self.name, "curvature": self.curvature, "hyperbolic_embedding": self.embedding}
        if self.embedding == "scaled":  # one host sync, at the end of the run
            facts.update(radius=self.radius, learn_scale=self.log_scale.requires_grad,
                         learned_scale=round(float(self.log_scale.detach().exp()), 4),
                         first_batch_mean_norm=None if self._mean_norm is None else round(float(self._mean_norm), 4))
        return facts


@register_method("HCU", smoke={"max_passes": 6})
@dataclass(frozen=True)
class HCU(ContrastiveUnlearning):
    """Contrastive unlearning with negative Poincare distances as similarities (geoopt).

    Same procedure, losses and stop rule as CU (`methods/_contrastive.py`); only
    the similarity differs: `s_ia = -d_c(x_i, x_a) / tau`, `x = expmap0_c(v)`.
    Loss defaults are the reference's tuned values (methods.md): tau 0.6,
    omega 4, lambda_CE 0.8, lambda_UL 0.2, c = 0.744 (hypll's softplus(0.1)).
    The optimiser is CU's (SGD lr 1e-3, momentum 0.9, batch 128) and so are the
    step semantics (omega steps), so that CU and HCU differ in geometry and its
    tuned loss weights only; the reference instead accumulated omega backwards
    into one step (`step_semantics=accumulate`) with (Riemannian)SGD lr 0.0153,
    momentum 0.58, weight decay 0.0037. No parameter lives on the manifold, so a
    Riemannian optimiser would be plain SGD here and is not offered.
    """

    temperature: float = hp(0.6, low=1e-4, search=uniform(0.05, 1.0),
                            doc="tau in s_ia = -d_c(x_i, x_a) / tau ([choice] search range around the reference's 0.6)")
    lambda_ul: float = hp(0.2, low=0.0, search=uniform(0.1, 2.0), doc="weight of the unlearning loss (CU's [0.1, 2])")
    lambda_ce: float = hp(0.8, low=0.0, doc="weight of CE on the retain batch")
    step_semantics: str = hp("omega_steps", choices=STEP_SEMANTICS,
                             doc="omega_steps: CU's (default); accumulate: the HCU reference's "
                                 "omega backwards then one step")
    curvature: float = hp(0.744, low=1e-6, doc="c of the Poincare ball (curvature -c)")
    hyperbolic_embedding: str = hp("normalized", choices=HYPERBOLIC_EMBEDDINGS,
                                   doc="[choice] normalized: reference (normalise, then expmap0); scaled: "
                                       "keep each feature's radius, one common scale")
    radius: float = hp(1.0, low=1e-6, doc="scaled: tangent norm given to the first batch's mean feature")
    learn_scale: bool = hp(False, doc="scaled: learn the common scale (log-parametrised, no weight decay)")

    def geometry(self, ctx: UnlearnContext) -> Geometry:
        return PoincareGeometry(self.curvature, self.hyperbolic_embedding, self.radius, self.learn_scale, ctx.device)


register_preset("HCU-scaled", "HCU", {"hyperbolic_embedding": "scaled"},
                summary="HCU with un-normalised (scaled) embeddings, so points keep their radius and the "
                        "ball's geometry is exercised")
