"""The 1-D statistics the attacks look at, from stored logits (numpy in, numpy out).

`logit_scaled_confidence` is LiRA's phi = log(p_y / (1 - p_y)) of the true-label softmax
probability, computed stably as z_y - logsumexp_{j != y} z_j. KLoM's "margin" (EasyDUB:
m = z_y - log sum_{j != y} exp z_j) is the same quantity, so both attacks and the
challenge's score read one statistic.
"""

from __future__ import annotations

import numpy as np


def logit_scaled_confidence(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """phi per row: z_y - logsumexp over the other classes (float64; finite for finite logits)."""
    z = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.arange(z.shape[0])
    true = z[rows, labels]
    others = z.copy()
    others[rows, labels] = -np.inf
    top = others.max(axis=1)
    rest = top + np.log(np.exp(others - top[:, None]).sum(axis=1))
    return true - rest


margin = logit_scaled_confidence  # KLoM's margin: the same formula
