"""KLoM: KL divergence of margins (Georgiev et al. 2024, arXiv 2410.23232; as shipped by
EasyDUB, easydub/EasyDUB-code, easydub/eval.py).

Per example, the margins m = z_y - log sum_{j != y} exp z_j under the method's models (p)
and under Retrain models (q) are clipped to [-100, 100] and binned into 20 equal bins
spanning both samples' joint range; KLoM = sum_b p_b log(p_b / max(q_b, 1e-5)) over bins
where p_b > 0, i.e. KL(method || Retrain). 0 when the histograms agree; large when the
method puts mass where Retrain has none.

One choice differs from the reference code: its `np.digitize` against the edges leaves the
largest margin outside every bin (it equals the last edge); here the last bin is closed
(np.histogram's convention), so every model counts.
"""

from __future__ import annotations

import numpy as np

BINS = 20
EPS = 1e-5
CLIP = 100.0


def example_klom(unlearned: np.ndarray, retrained: np.ndarray, bins: int = BINS, eps: float = EPS,
                 clip: float = CLIP) -> float:
    p_s = np.clip(np.asarray(unlearned, dtype=np.float64), -clip, clip)
    q_s = np.clip(np.asarray(retrained, dtype=np.float64), -clip, clip)
    lo, hi = min(p_s.min(), q_s.min()), max(p_s.max(), q_s.max())
    if lo >= hi:
        hi = lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    p = np.histogram(p_s, edges)[0] / len(p_s)
    q = np.histogram(q_s, edges)[0] / len(q_s)
    mask = p > 0
    return float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], eps))))


def klom(unlearned: np.ndarray, retrained: np.ndarray, **kwargs) -> np.ndarray:
    """Per-example KLoM; inputs are [models, examples] arrays of margins (the two model counts may differ)."""
    u, r = np.asarray(unlearned), np.asarray(retrained)
    if u.ndim != 2 or r.ndim != 2 or u.shape[1] != r.shape[1]:
        raise ValueError(f"need [models, examples] arrays over the same examples, got {u.shape} and {r.shape}")
    return np.array([example_klom(u[:, i], r[:, i], **kwargs) for i in range(u.shape[1])])
