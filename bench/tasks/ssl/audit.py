"""The ssl task's metrics: EncoderMI (threshold variant), weighted kNN, linear probe, the
paper's TOP1 / LOSS / COSSIM, and the classifier task's SVC MIA on the probe's confidence.

EncoderMI (Liu et al., CCS'21), as in the Alignment-Calibration code: per image, `views`
augmented views (RandomResizedCrop(32, (0.1, 1)), flip, ColorJitter(.4, .4, .4, .1) p .8,
grey p .2), the backbone's features, the mean of the V(V-1)/2 pairwise cosines. A member
scores high (an overfitted encoder maps all views of a member to nearly one point). The
threshold maximises balanced accuracy over an even grid in [0, 1], fitted on the retain
members vs the non-members; accuracy, precision, recall and AUC are then measured on the
forget members vs as many non-members (a seeded draw), so chance is 50%. Those non-members
are among the ones the threshold was fitted on (the AC code reports the forget set alone).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.metrics import mia_efficacy
from bench.tasks.ssl.objective import Objective, network_input
from bench.tasks.ssl.models import SSLModel
from bench.views import ViewSpec, views


@torch.no_grad()
def backbone_features(engine: Engine, model: SSLModel, data: DeviceData, batch_size: int) -> torch.Tensor:
    """D(x) for every image of `data`, eval mode, no augmentation; float32 (N, d) on the device."""
    out = []
    for start in range(0, len(data), batch_size):
        x = engine.to_input(data.images[start:start + batch_size], None, augment=False)
        with engine.autocast():
            out.append(model.features(x).float())
    return torch.cat(out) if out else torch.zeros(0, model.feature_dim, device=engine.device)


def mean_pairwise_cosine(features: torch.Tensor) -> torch.Tensor:
    """(N, V, d) -> (N,): the mean of the V(V-1)/2 cosines between distinct views of each image."""
    f = F.normalize(features.float(), dim=2)
    gram = f @ f.transpose(1, 2)
    v = f.shape[1]
    upper = torch.triu(torch.ones(v, v, dtype=torch.bool, device=f.device), diagonal=1)
    return gram[:, upper].mean(dim=1)


@torch.no_grad()
def encodermi_scores(engine: Engine, model: SSLModel, images: torch.Tensor, spec: ViewSpec, n_views: int,
                     generator: torch.Generator, batch_size: int) -> torch.Tensor:
    """Each uint8 image's EncoderMI score (the mean pairwise cosine of its views' features)."""
    scores = []
    per_chunk = max(1, batch_size // n_views)
    for start in range(0, images.shape[0], per_chunk):
        raw = images[start:start + per_chunk].repeat_interleave(n_views, dim=0)
        x = network_input(engine, views(raw, spec, generator))
        with engine.autocast():
            feats = model.features(x).float()
        scores.append(mean_pairwise_cosine(feats.view(-1, n_views, feats.shape[1])))
    return torch.cat(scores) if scores else torch.zeros(0, device=engine.device)


def fit_threshold(member: np.ndarray, nonmember: np.ndarray, grid_points: int) -> float:
    """The threshold t in linspace(0, 1, grid_points) maximising balanced accuracy of
    "member iff score >= t" (the lowest such t on ties)."""
    grid = np.linspace(0.0, 1.0, grid_points)
    tpr = (member[None, :] >= grid[:, None]).mean(axis=1)
    tnr = (nonmember[None, :] < grid[:, None]).mean(axis=1)
    return float(grid[int(np.argmax((tpr + tnr) / 2))])


def membership_metrics(threshold: float, member: np.ndarray, nonmember: np.ndarray) -> dict[str, float]:
    """Accuracy, precision, recall (member = positive) of the threshold, and the scores' ROC AUC, in percent."""
    from sklearn.metrics import roc_auc_score

    pred_m, pred_n = member >= threshold, nonmember >= threshold
    tp, fp = float(pred_m.sum()), float(pred_n.sum())
    n = len(member) + len(nonmember)
    labels = np.concatenate([np.ones(len(member)), np.zeros(len(nonmember))])
    scores = np.concatenate([member, nonmember])
    return {
        "encodermi_acc": 100.0 * (tp + float((~pred_n).sum())) / n,
        "encodermi_precision": 100.0 * tp / (tp + fp) if tp + fp else float("nan"),
        "encodermi_recall": 100.0 * tp / len(member) if len(member) else float("nan"),
        "encodermi_auc": 100.0 * float(roc_auc_score(labels, scores)) if len(member) and len(nonmember) else float("nan"),
    }


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, query: torch.Tensor, query_labels: torch.Tensor,
                 num_classes: int, k: int, temperature: float, chunk: int = 1024) -> float:
    """Weighted kNN (Wu et al. 2018): the k most cosine-similar bank features vote for their
    labels with weight exp(cos / T); accuracy in percent."""
    bank = F.normalize(bank.float(), dim=1)
    k = min(k, bank.shape[0])
    correct = torch.zeros((), device=bank.device)
    for start in range(0, query.shape[0], chunk):
        q = F.normalize(query[start:start + chunk].float(), dim=1)
        sim, idx = (q @ bank.T).topk(k, dim=1)
        votes = torch.zeros(q.shape[0], num_classes, device=q.device)
        votes.scatter_add_(1, bank_labels[idx], torch.exp(sim / temperature))
        correct += (votes.argmax(1) == query_labels[start:start + chunk]).sum()
    return 100.0 * correct.item() / max(query.shape[0], 1)


class LinearProbe(nn.Module):
    """Linear(d, C) on frozen features standardised with the training features' mean and std."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = nn.Linear(mean.shape[0], num_classes)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.linear((feats - self.mean) / self.std)


def train_probe(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, epochs: int, lr: float, batch_size: int,
                generator: torch.Generator, init_seed: int) -> LinearProbe:
    """SGD (momentum 0.9, no weight decay), lr cosine to 0, cross-entropy; fp32; the initial
    weights are a function of `init_seed` (so every model of a cell gets the same probe start)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        probe = LinearProbe(feats.mean(0), feats.std(0).clamp_min(1e-6), num_classes).to(feats.device)
    opt = torch.optim.SGD(probe.parameters(), lr=lr, momentum=0.9)
    steps = epochs * math.ceil(feats.shape[0] / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, steps), eta_min=0.0)
    for _ in range(epochs):
        order = torch.randperm(feats.shape[0], device=feats.device, generator=generator)
        for start in range(0, feats.shape[0], batch_size):
            pos = order[start:start + batch_size]
            loss = F.cross_entropy(probe(feats[pos]), labels[pos])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return probe.eval()


@dataclass(frozen=True)
class AuditSets:
    retain: DeviceData  # members kept
    forget: DeviceData  # members forgotten
    nonmembers: DeviceData  # D_t: test images
    nonmember_eval_pos: torch.Tensor  # positions of |D_f| non-members (a seeded draw): the balanced evaluation


@dataclass(frozen=True)
class AuditConfig:
    num_classes: int
    image_size: int
    batch_size: int
    seed: int
    mia_views: int
    mia_crop_scale: float
    mia_grid: int
    knn_k: int
    knn_temperature: float
    probe_epochs: int
    probe_lr: float
    probe_batch_size: int


@torch.no_grad()
def _stat_loss_and_cossim(engine: Engine, model: SSLModel, objective: Objective, data: DeviceData, batch_size: int,
                          generator: torch.Generator) -> tuple[float, float]:
    """The paper's LOSS (the framework's loss per sample, eval mode, no momentum update) and
    COSSIM (mean cosine between the backbone features of two training views of each image)."""
    if len(data) == 0:
        return float("nan"), float("nan")
    losses, cosines = [], []
    for start in range(0, len(data), batch_size):
        raw = data.images[start:start + batch_size]
        v1, v2 = objective.two_views(raw, generator)
        losses.append(objective.loss_on_views(model, v1, v2, update=False, reduction="none").float())
        with engine.autocast():
            f1, f2 = model.features(v1).float(), model.features(v2).float()
        cosines.append(F.cosine_similarity(f1, f2, dim=1))
    return torch.cat(losses).mean().item(), torch.cat(cosines).mean().item()


def audit(engine: Engine, model: SSLModel, objective: Objective, sets: AuditSets, cfg: AuditConfig) -> dict[str, float]:
    """Every metric of the ssl task for `model` (left in the mode it came in), in float32 as the
    classifier's metrics (no bf16 autocast or TF32, even where training uses them)."""
    was_training = model.training
    model.eval()
    try:
        with engine.full_precision():
            return _audit(engine, model, objective, sets, cfg)
    finally:
        model.train(was_training)


def _audit(engine: Engine, model: SSLModel, objective: Objective, sets: AuditSets, cfg: AuditConfig) -> dict[str, float]:
    gen = engine.generator(cfg.seed)
    bs = cfg.batch_size
    spec = ViewSpec(size=cfg.image_size, scale=(cfg.mia_crop_scale, 1.0))

    def mi(data: DeviceData) -> np.ndarray:
        return encodermi_scores(engine, model, data.images, spec, cfg.mia_views, gen, bs).cpu().numpy()

    retain_s, forget_s, non_s = mi(sets.retain), mi(sets.forget), mi(sets.nonmembers)
    eval_pos = sets.nonmember_eval_pos
    threshold = fit_threshold(retain_s, non_s, cfg.mia_grid)
    metrics = membership_metrics(threshold, forget_s, non_s[eval_pos.cpu().numpy()])
    metrics["encodermi_threshold"] = threshold
    metrics["encodermi_forget_mean"] = float(forget_s.mean()) if len(forget_s) else float("nan")
    metrics["encodermi_nonmember_mean"] = float(non_s.mean())

    retain_f = backbone_features(engine, model, sets.retain, bs)
    forget_f = backbone_features(engine, model, sets.forget, bs)
    non_f = backbone_features(engine, model, sets.nonmembers, bs)
    metrics["knn_acc"] = knn_accuracy(retain_f, sets.retain.labels, non_f, sets.nonmembers.labels, cfg.num_classes,
                                      cfg.knn_k, cfg.knn_temperature)
    with torch.enable_grad():
        probe = train_probe(retain_f, sets.retain.labels, cfg.num_classes, cfg.probe_epochs, cfg.probe_lr,
                            cfg.probe_batch_size, gen, cfg.seed % 2**63)
    with torch.no_grad():
        p_retain, p_forget, p_non = (torch.softmax(probe(f), dim=1) for f in (retain_f, forget_f, non_f))
    metrics["probe_acc"] = 100.0 * (p_non.argmax(1) == sets.nonmembers.labels).float().mean().item()

    def true_conf(p: torch.Tensor, data: DeviceData) -> np.ndarray:
        return p.gather(1, data.labels[:, None]).squeeze(1).cpu().numpy()

    shadow = true_conf(p_retain, sets.retain)[: len(sets.nonmembers)]
    metrics["svc_mia"] = mia_efficacy(shadow, true_conf(p_non, sets.nonmembers), true_conf(p_forget, sets.forget))
    metrics["top1"] = p_forget.max(1).values.mean().item() if len(sets.forget) else float("nan")
    metrics["nonmember_top1"] = p_non.max(1).values.mean().item()
    metrics["loss"], metrics["cossim"] = _stat_loss_and_cossim(engine, model, objective, sets.forget, bs, gen)
    metrics["nonmember_loss"], metrics["nonmember_cossim"] = _stat_loss_and_cossim(
        engine, model, objective, sets.nonmembers, bs, gen)
    return metrics
