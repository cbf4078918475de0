"""Contrastive unlearning (Lee et al., arXiv 2401.10458): the procedure CU and HCU share.

CU and HCU are one procedure with two geometries. A geometry turns embeddings
into a similarity matrix `s` (forget anchors x retain samples, already divided
by the temperature); the unlearning losses below only ever see `s` and labels:

    random-sample:  l_i = -(1/|N_i|) sum_{a in N_i} [ s_ia - log sum_{p in P_i} exp(s_ip) ]
    single-class:   l_i = -(1/|N_i|) sum_{a in N_i} s_ia + log |N_i|

with P_i / N_i the retain samples of the anchor's label / of another label
(methods.md, "Contrastive Unlearning, CU"). An anchor without a positive falls
back to the single-class form (the reference code produces inf/NaN there); an
anchor without a negative contributes 0, as in the reference code, and the
batch mean is still taken over every anchor.

Procedure (one pass = one sweep over D_f): each forget batch gets `omega`
optimiser steps, each on a fresh random retain batch; forget and retain go
through one forward pass together (train-mode BatchNorm on the mixed batch);
`L = lambda_UL * mean_i l_i + lambda_CE * CE(retain)`. After every pass the stop
rule is checked: random forgetting stops when acc(D_f) <= acc(D_t), class-wise
when the forgotten class's test accuracy <= 100/C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.engine import Batch
from bench import sgd_fields as sgd
from bench.hparams import hp, int_range, log, uniform
from bench.method import UnlearnContext

LOSS_FORMS = ("auto", "random_sample", "single_class")
STEP_SEMANTICS = ("omega_steps", "accumulate")
EMBEDDINGS = ("penultimate", "projection_head")
PROJECTION_DIM = 128  # the official code's head: feature_dim -> feature_dim -> 128


# ---------------------------------------------------------------------------- losses


def label_masks(anchor_labels: torch.Tensor, other_labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(positives, negatives): bool (n_anchor, n_other) masks, same label / other label."""
    positives = anchor_labels[:, None] == other_labels[None, :]
    return positives, ~positives


def single_class_loss(sim: torch.Tensor, anchor_labels: torch.Tensor, other_labels: torch.Tensor) -> torch.Tensor:
    """Per-anchor single-class loss `-(1/|N_i|) sum_a s_ia + log|N_i|` (0 where N_i is empty)."""
    _, negatives = label_masks(anchor_labels, other_labels)
    n_neg = negatives.sum(dim=1)
    mean_neg = (sim * negatives).sum(dim=1) / n_neg.clamp_min(1)
    loss = -mean_neg + torch.log(n_neg.clamp_min(1).to(sim.dtype))
    return torch.where(n_neg > 0, loss, torch.zeros_like(loss))


def random_sample_loss(sim: torch.Tensor, anchor_labels: torch.Tensor, other_labels: torch.Tensor) -> torch.Tensor:
    """Per-anchor random-sample loss `-(1/|N_i|) sum_a [s_ia - log sum_p exp(s_ip)]`.

    Anchors with no positive in the batch use the single-class form; anchors with
    no negative contribute 0.
    """
    positives, negatives = label_masks(anchor_labels, other_labels)
    has_pos = positives.any(dim=1)
    n_neg = negatives.sum(dim=1)
    mean_neg = (sim * negatives).sum(dim=1) / n_neg.clamp_min(1)
    # A row without a positive gives -inf here and NaN in logsumexp's backward; the `where`
    # below discards its value and masked_fill's backward zeroes the NaN at every filled entry.
    log_pos = torch.logsumexp(sim.masked_fill(~positives, float("-inf")), dim=1)
    log_fallback = torch.log(n_neg.clamp_min(1).to(sim.dtype))
    loss = -mean_neg + torch.where(has_pos, log_pos, log_fallback)
    return torch.where(n_neg > 0, loss, torch.zeros_like(loss))


def unlearning_loss(sim: torch.Tensor, anchor_labels: torch.Tensor, other_labels: torch.Tensor, form: str) -> torch.Tensor:
    """Mean over anchors of the random-sample or single-class loss."""
    if form == "random_sample":
        return random_sample_loss(sim, anchor_labels, other_labels).mean()
    if form == "single_class":
        return single_class_loss(sim, anchor_labels, other_labels).mean()
    raise ValueError(f"unknown loss form {form!r}")


def resolve_loss_form(choice: str, scenario_kind: str) -> str:
    """'auto' -> single-class for class-wise forgetting, random-sample otherwise."""
    if choice != "auto":
        return choice
    return "single_class" if scenario_kind == "class" else "random_sample"


# ---------------------------------------------------------------------------- geometry


class Geometry(Protocol):
    name: str

    def similarity(self, anchors: torch.Tensor, others: torch.Tensor, temperature: float) -> torch.Tensor:
        """(n_anchor, n_other) similarities divided by the temperature."""
        ...

    def parameters(self) -> list[nn.Parameter]:
        """Learnable parameters of the geometry itself (trained along, no weight decay)."""
        ...

    def describe(self) -> dict:
        ...


class EuclideanGeometry:
    """CU: `z = x / ||x||`, `s_ij = z_i . z_j / tau` (cosine similarity)."""

    name = "euclidean"

    def similarity(self, anchors: torch.Tensor, others: torch.Tensor, temperature: float) -> torch.Tensor:
        return F.normalize(anchors.float(), dim=1) @ F.normalize(others.float(), dim=1).T / temperature

    def parameters(self) -> list[nn.Parameter]:
        return []

    def describe(self) -> dict:
        return {"geometry": self.name}


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ContrastiveUnlearning:
    """Hyperparameters shared by CU and HCU (subclasses set the defaults and the geometry)."""

    temperature: float = hp(0.7, low=1e-4, search=uniform(0.01, 0.2), doc="tau in s_ij = sim(z_i, z_j) / tau (CoUn's CU range (0, 0.2])")
    omega: int = hp(4, low=1, search=int_range(1, 5), doc="optimiser steps (or accumulated backwards) per forget batch (CoUn: [1, 5])")
    lambda_ul: float = hp(3.0, low=0.0, search=uniform(0.1, 2.0), doc="weight of the unlearning loss (CoUn: [0.1, 2])")
    lambda_ce: float = hp(1.0, low=0.0, doc="weight of CE on the retain batch")
    lr: float = sgd.lr(1e-3, doc="SGD learning rate (constant)", search=log(1e-4, 0.1))  # [choice] around the code's 1e-3
    momentum: float = sgd.momentum()
    weight_decay: float = sgd.weight_decay()
    batch_size: int = sgd.batch_size(128, low=2, doc="forget batch size B; each retain batch also has B samples")
    max_passes: int = sgd.epochs(50, doc="at most this many passes over D_f if the stop rule never fires")
    loss_form: str = hp("auto", choices=LOSS_FORMS,
                        doc="auto: single_class for class-wise forgetting, random_sample for random")
    embedding: str = hp("penultimate", choices=EMBEDDINGS,
                        doc="[choice] penultimate features (plain classifier), or the official code's "
                            "feature_dim-feature_dim-128 projection head, freshly initialised and trained along")
    fixed_retain: bool = hp(False, doc="reproduce the reference code: always the first B retain samples "
                                       "(re-augmented) instead of a fresh random retain batch")
    step_semantics: str = hp("omega_steps", choices=STEP_SEMANTICS,
                             doc="omega_steps: one optimiser step per retain batch (CU paper, Alg. 1); "
                                 "accumulate: omega backwards, one step (HCU reference code)")

    def geometry(self, ctx: UnlearnContext) -> Geometry:
        raise NotImplementedError

    def run(self, ctx: UnlearnContext) -> None:
        run_contrastive_unlearning(ctx, self, self.geometry(ctx))


# ---------------------------------------------------------------------------- procedure


def projection_head(feature_dim: int, seed: int) -> nn.Sequential:
    """The official code's head: Linear(d, d) - ReLU - Linear(d, 128), initialised from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Linear(feature_dim, feature_dim), nn.ReLU(inplace=True),
                             nn.Linear(feature_dim, PROJECTION_DIM))


def contrastive_loss(ctx: UnlearnContext, settings: ContrastiveUnlearning, geometry: Geometry,
                     head: nn.Module | None, forget: Batch, retain: Batch, form: str) -> torch.Tensor:
    """`lambda_UL * L_UL + lambda_CE * CE(retain)` from one forward over forget + retain."""
    n = len(forget)
    logits, feats = ctx.forward(torch.cat([forget.x, retain.x]))
    emb = head(feats) if head is not None else feats
    sim = geometry.similarity(emb[:n], emb[n:], settings.temperature)
    ul = unlearning_loss(sim, forget.y, retain.y, form)
    ce = F.cross_entropy(logits[n:], retain.y)
    return settings.lambda_ul * ul + settings.lambda_ce * ce


class StopRule:
    """Random: acc(D_f) <= acc(D_t); class-wise: forgotten-class test accuracy <= 100/C."""

    def __init__(self, ctx: UnlearnContext):
        self.ctx = ctx
        self.class_test = ctx.test.of_class(ctx.forget_class) if ctx.scenario.kind == "class" else None

    def check(self) -> tuple[bool, dict]:
        ctx = self.ctx
        if self.class_test is not None:
            acc = ctx.accuracy(self.class_test)
            return acc <= 100.0 / ctx.num_classes, {"forget_class_test_acc": acc}
        forget_acc, test_acc = ctx.accuracy(ctx.forget), ctx.accuracy(ctx.test)
        return forget_acc <= test_acc, {"forget_acc": forget_acc, "test_acc": test_acc}


def run_contrastive_unlearning(ctx: UnlearnContext, settings: ContrastiveUnlearning, geometry: Geometry) -> None:
    form = resolve_loss_form(settings.loss_form, ctx.scenario.kind)
    head = None
    if settings.embedding == "projection_head":
        head = projection_head(ctx.model.feature_dim, ctx.seed % (2**31)).to(ctx.device)
        head.train()
    params = list(ctx.model.parameters()) + (list(head.parameters()) if head is not None else [])
    groups = [{"params": params}]
    if geometry.parameters():
        groups.append({"params": geometry.parameters(), "weight_decay": 0.0})
    opt = ctx.sgd(groups, lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay)
    retain_pool = ctx.retain.head(settings.batch_size) if settings.fixed_retain else ctx.retain
    stop_rule = StopRule(ctx)

    def loss_on(forget: Batch) -> torch.Tensor:
        retain = ctx.sample(retain_pool, settings.batch_size)
        return contrastive_loss(ctx, settings, geometry, head, forget, retain, form)

    passes, fired, last = 0, False, {}
    for _ in ctx.epochs(settings.max_passes):
        for forget in ctx.batches(ctx.forget, settings.batch_size):
            if settings.step_semantics == "omega_steps":
                for _ in range(settings.omega):
                    ctx.step(opt, loss_on(forget))
            else:
                opt.zero_grad(set_to_none=True)
                for _ in range(settings.omega):
                    loss = loss_on(forget)
                    loss.backward()
                    ctx.watch(loss)
                opt.step()
        passes += 1
        fired, last = stop_rule.check()
        if fired:
            break
    ctx.note(loss_form=form, embedding=settings.embedding, **geometry.describe(),
             passes=passes, stop_rule_fired=fired, **{f"at_stop_{k}": round(v, 4) for k, v in last.items()})

