"""Forgetting quality as scored in the NeurIPS 2023 unlearning challenge (Triantafillou et al.
2024, arXiv 2406.09073), following the organisers' released metric (google-deepmind/
unlearning_evaluation, metric.py) and their evaluation note (Machine_Unlearning_Metric.pdf).

Per forget example s, with phi_s under N unlearned models (U) and N retrained models (R):
- "positive" is whichever of U, R has the larger median phi;
- if the narrower of the two samples spans < 1% of the wider one's range, epsilon = 50 (cap);
- otherwise two families of decision rules ("attacks") are swept: one threshold (predict
  positive at phi >= t; 100 thresholds per unit of phi over the pooled range), and two
  thresholds (predict the peakier sample inside [l, r]; r over [min + w - 2, max + 2] of
  the peakier sample, 400 left edges per right edge in [r - w - 2, r - w + 2], w = the
  narrower range, 100 per unit);
- each rule's FPR and FNR give epsilon = max(log(1-delta-FPR) - log FNR,
  log(1-delta-FNR) - log FPR), clipped at 0; a rule with FPR = FNR = 0 gives inf, a rule
  with exactly one of them 0 is discarded; the example's epsilon is the largest, capped at 50;
- points H(s) = 2^-(n-1) for epsilon in bin n (width 0.5, n = 1, 2, ...), over the bins
  that fit below ceil(log(N - 1)); beyond them 0 points;
- F = mean of H over the forget set; final score = F x (RA_U/RA_R) x (TA_U/TA_R), the
  accuracies averaged over the N models of each kind.
"""

from __future__ import annotations

import math

import numpy as np

DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
BUFFER = 2.0
BIN_WIDTH = 0.5


def _geq_fraction(sorted_values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Fraction of values >= each threshold."""
    n = len(sorted_values)
    return (n - np.searchsorted(sorted_values, thresholds, side="left")) / n


def single_threshold_rates(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, FNR) of "positive iff phi >= t" for t on the pooled range's grid."""
    lo, hi = min(pos.min(), neg.min()), max(pos.max(), neg.max())
    t = np.linspace(lo, hi, int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    tpr = _geq_fraction(np.sort(pos), t)
    fpr = _geq_fraction(np.sort(neg), t)
    return fpr, 1.0 - tpr


def double_threshold_rates(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(FPR, FNR) of "the peakier sample iff l <= phi <= r" over the challenge's grid of (l, r)."""
    pos_range, neg_range = np.ptp(pos), np.ptp(neg)
    width = neg_range if pos_range > neg_range else pos_range
    if pos_range >= neg_range:  # the positive of this family is the peakier sample
        pos, neg = neg, pos
    lo, hi = pos.min() + width - BUFFER, pos.max() + BUFFER
    right = np.linspace(lo, hi, int(math.ceil((hi - lo) * THRESHOLDS_PER_UNIT)))
    n_left = int(math.ceil(2 * BUFFER * THRESHOLDS_PER_UNIT))
    # per right edge r: linspace(r - w - 2, r - w + 2, 400), built in one broadcast (same values up to rounding)
    left = (right[:, None] - width) + np.linspace(-BUFFER, BUFFER, n_left)[None, :]
    right = np.broadcast_to(right[:, None], left.shape)

    def inside(sample: np.ndarray) -> np.ndarray:
        s = np.sort(sample)
        count = np.searchsorted(s, right, side="right") - np.searchsorted(s, left, side="left")
        return (np.maximum(count, 0) / len(s)).ravel()

    tpr, fpr = inside(pos), inside(neg)
    return fpr, 1.0 - tpr


def epsilon_from_rates(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA) -> float:
    """The strongest rule's epsilon (Algorithm 1 of the challenge's evaluation note)."""
    fpr, fnr = np.asarray(fpr, dtype=np.float64), np.asarray(fnr, dtype=np.float64)
    if np.any((fpr == 0) & (fnr == 0)):
        return math.inf
    keep = (fpr > 0) & (fnr > 0)
    if not keep.any():
        return 0.0  # every rule had one error rate at 0: no usable evidence (the reference code asserts here)
    fpr, fnr = fpr[keep], fnr[keep]
    with np.errstate(invalid="ignore", divide="ignore"):
        e1 = np.log(1 - delta - fpr) - np.log(fnr)
        e2 = np.log(1 - delta - fnr) - np.log(fpr)
    per_rule = np.fmax(e1, e2)  # nan only where both are nan (a rate above 1 - delta)
    if np.all(np.isnan(per_rule)):
        return 0.0
    return float(max(np.nanmax(per_rule), 0.0))


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """Epsilon of one forget example from its phi under N unlearned and N retrained models."""
    u, r = np.asarray(unlearned, dtype=np.float64), np.asarray(retrained, dtype=np.float64)
    if np.median(r) > np.median(u):
        pos, neg = r, u
    else:
        pos, neg = u, r
    ranges = sorted([np.ptp(pos), np.ptp(neg)])
    if ranges[1] == 0:  # both samples constant: identical, or perfectly separated
        return 0.0 if pos[0] == neg[0] else EPSILON_CAP
    if ranges[0] / ranges[1] < 0.01:
        return EPSILON_CAP
    fpr_d, fnr_d = double_threshold_rates(pos, neg)
    fpr_s, fnr_s = single_threshold_rates(pos, neg)
    eps = epsilon_from_rates(np.concatenate([fpr_d, fpr_s]), np.concatenate([fnr_d, fnr_s]), delta)
    return float(min(max(eps, 0.0), EPSILON_CAP))


def epsilons(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Per-example epsilons; inputs are [N models, n examples] arrays of phi."""
    unlearned, retrained = np.asarray(unlearned), np.asarray(retrained)
    if unlearned.shape != retrained.shape or unlearned.ndim != 2:
        raise ValueError(f"need two [models, examples] arrays of one shape, got {unlearned.shape} and {retrained.shape}")
    return np.array([example_epsilon(unlearned[:, i], retrained[:, i], delta) for i in range(unlearned.shape[1])])


def bin_points(num_models: int) -> list[float]:
    """Points per epsilon bin [0, .5), [.5, 1), ... that fit below ceil(log(N - 1))."""
    max_epsilon = math.ceil(math.log(num_models - 1)) if num_models > 1 else 0
    n_bins = int(math.floor(max_epsilon / BIN_WIDTH + 1e-9))
    return [2.0 ** -i for i in range(n_bins)]


def example_points(eps: np.ndarray, num_models: int) -> np.ndarray:
    """H(s) = 2 / 2^n(s) for bin index n (1-based); 0 beyond the last bin."""
    points = bin_points(num_models)
    index = np.floor(np.asarray(eps, dtype=np.float64) / BIN_WIDTH)  # 0-based bin
    out = np.zeros(len(index))
    ok = index < len(points)
    out[ok] = np.asarray(points)[index[ok].astype(int)] if ok.any() else 0.0
    return out


def forgetting_quality(eps: np.ndarray, num_models: int) -> float:
    return float(np.mean(example_points(eps, num_models))) if len(eps) else float("nan")


def final_score(quality: float, ra_unlearned: float, ra_retrained: float, ta_unlearned: float,
                ta_retrained: float) -> float:
    """F x RA_U/RA_R x TA_U/TA_R (plain ratios, as in the organisers' code: above 1 is not capped)."""
    return quality * (ra_unlearned / ra_retrained) * (ta_unlearned / ta_retrained)
