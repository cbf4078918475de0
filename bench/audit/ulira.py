"""U-LiRA-style per-example likelihood-ratio attack (Hayes et al. 2024, arXiv 2403.01218).

For each forget example the attacker fits one Gaussian to phi (the logit-scaled
true-label confidence) under models the method unlearned and one under Retrain models,
and scores a target model by log N(phi; mu_U, sd_U) - log N(phi; mu_R, sd_R): high means
"this model was unlearned, not retrained". The game is that of U-LiRA: tell an unlearned
model from a retrained one, example by example.

Held-out evaluation (leave one pair out): with K replicas of each kind, fold j fits the
Gaussians on the other K-1 unlearned and K-1 retrained replicas and scores only replica j
of each kind, so no model is scored by Gaussians fitted on it. The K x n scores of the
unlearned replicas are the positives, those of the Retrain replicas the negatives; AUC and
the TPR at 1% and 0.1% FPR are read from the pooled ROC curve. Needs K >= 3.

Variance (`variance`): "per_example" (LiRA's online attack, the default) or "global" (one
variance per kind pooled over examples, LiRA's choice for few shadow models). Standard
deviations are floored at `min_std` so a method whose replicas are identical (Original,
GA with a deterministic schedule) gives a finite score.
"""

from __future__ import annotations

import numpy as np

VARIANCES = ("per_example", "global")
MIN_STD = 1e-3


def _log_normal(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd)


def _std(sample: np.ndarray, variance: str, min_std: float) -> np.ndarray:
    var = sample.var(axis=0, ddof=1)
    if variance == "global":
        var = np.full_like(var, var.mean())
    return np.maximum(np.sqrt(var), min_std)


def held_out_scores(unlearned: np.ndarray, retrained: np.ndarray, variance: str = "per_example",
                    min_std: float = MIN_STD) -> tuple[np.ndarray, np.ndarray]:
    """Leave-one-pair-out scores: ([K, n] for the unlearned replicas, [K, n] for the Retrain ones)."""
    u, r = np.asarray(unlearned, dtype=np.float64), np.asarray(retrained, dtype=np.float64)
    if u.shape != r.shape or u.ndim != 2:
        raise ValueError(f"need two [models, examples] arrays of one shape, got {u.shape} and {r.shape}")
    if variance not in VARIANCES:
        raise ValueError(f"variance must be one of {VARIANCES}, got {variance!r}")
    k = u.shape[0]
    if k < 3:
        raise ValueError(f"U-LiRA's held-out fit needs at least 3 replicas of each kind, got {k}")
    scores_u, scores_r = np.empty_like(u), np.empty_like(r)
    for j in range(k):
        rest = np.arange(k) != j
        mu_u, mu_r = u[rest].mean(axis=0), r[rest].mean(axis=0)
        sd_u, sd_r = _std(u[rest], variance, min_std), _std(r[rest], variance, min_std)
        for x, out in ((u[j], scores_u), (r[j], scores_r)):
            out[j] = _log_normal(x, mu_u, sd_u) - _log_normal(x, mu_r, sd_r)
    return scores_u, scores_r


def roc(positives: np.ndarray, negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, TPR) at every distinct score threshold ("positive iff score >= t"), from (0, 0)."""
    scores = np.concatenate([positives.ravel(), negatives.ravel()])
    labels = np.concatenate([np.ones(positives.size), np.zeros(negatives.size)])
    order = np.argsort(-scores, kind="mergesort")
    scores, labels = scores[order], labels[order]
    last_of_tie = np.r_[scores[1:] != scores[:-1], True]
    tp = np.cumsum(labels)[last_of_tie]
    fp = np.cumsum(1 - labels)[last_of_tie]
    return np.r_[0.0, fp / negatives.size], np.r_[0.0, tp / positives.size]


def auc(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.trapezoid(tpr, fpr))


def tpr_at(fpr: np.ndarray, tpr: np.ndarray, max_fpr: float) -> float:
    """The highest TPR among thresholds whose FPR is at most `max_fpr`."""
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def attack(unlearned: np.ndarray, retrained: np.ndarray, variance: str = "per_example",
           min_std: float = MIN_STD) -> dict[str, float]:
    """AUC, TPR at 1% and 0.1% FPR of the held-out attack, and the number of scored pairs."""
    scores_u, scores_r = held_out_scores(unlearned, retrained, variance, min_std)
    fpr, tpr = roc(scores_u, scores_r)
    return {"auc": auc(fpr, tpr), "tpr_at_1pct": tpr_at(fpr, tpr, 0.01), "tpr_at_0.1pct": tpr_at(fpr, tpr, 0.001),
            "scored": int(scores_u.size)}


def example_scores(unlearned: np.ndarray, retrained: np.ndarray, variance: str = "per_example",
                   min_std: float = MIN_STD) -> np.ndarray:
    """Per example: mean held-out score of the unlearned replicas minus that of the Retrain ones
    (how far apart the attack puts the two kinds on this example; about 0 when it cannot)."""
    scores_u, scores_r = held_out_scores(unlearned, retrained, variance, min_std)
    return scores_u.mean(axis=0) - scores_r.mean(axis=0)
