"""Statistics over seeds: mean, sample std, and a bootstrap confidence interval of the mean."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

CONFIDENCE = 0.95
N_RESAMPLES = 9999
BOOTSTRAP_SEED = 0  # fixed, so a page regenerated from the same records is identical


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1); the std is NaN for a single value (no spread to report)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return math.nan, math.nan
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else math.nan


def bootstrap_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean over seeds (scipy.stats.bootstrap).

    None for fewer than two values: one seed has no interval, and none is invented.
    The percentile method is used rather than BCa because with a handful of seeds
    (or identical values) BCa's acceleration estimate is undefined.
    """
    from scipy.stats import bootstrap

    arr = np.asarray(values, dtype=float)
    if arr.size < 2:
        return None
    if np.all(arr == arr[0]):
        return float(arr[0]), float(arr[0])
    result = bootstrap((arr,), np.mean, confidence_level=confidence, n_resamples=N_RESAMPLES,
                       method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)
