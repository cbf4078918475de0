"""The three frameworks' losses as pure functions of embeddings (tested against hand computations)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float, reduction: str = "mean") -> torch.Tensor:
    """SimCLR's NT-Xent over 2N views: for view i, cross-entropy of its positive (the other view
    of the same image) against the 2N - 2 other views, cosine similarity / T; mean over 2N
    (per view with reduction="none", first the N views of z1 then those of z2)."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]).float(), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target, reduction=reduction)


def moco_infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float,
                 reduction: str = "mean") -> torch.Tensor:
    """MoCo's InfoNCE: query q against its key k (positive) and the queue's keys (negatives);
    q and k are normalised here, the queue holds normalised keys (K, d)."""
    q = F.normalize(q.float(), dim=1)
    k = F.normalize(k.float(), dim=1)
    positive = (q * k).sum(dim=1, keepdim=True)
    negative = q @ queue.float().T
    logits = torch.cat([positive, negative], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(q.shape[0], dtype=torch.int64, device=q.device), reduction=reduction)


def byol_regression(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL's per-sample loss 2 - 2 cos(p, z) (the squared distance of the normalised vectors)."""
    return 2 - 2 * F.cosine_similarity(p.float(), z.float(), dim=1)
