"""Batched augmentation and normalisation as tensor ops on the device.

Random crop (zero-pad, then crop back to size) and horizontal flip are one
gather per batch: each sample's crop offset and flip decision become row and
column index maps, so there is no per-sample Python and no host round trip.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip(images: torch.Tensor, pad: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Per-sample random crop after zero padding by `pad`, and random horizontal flip.

    `images` is uint8 (N, C, H, W); the result has the same shape and dtype.
    """
    n, c, h, w = images.shape
    if n == 0 or (pad == 0 and not flip):
        return images
    device = images.device
    padded = F.pad(images, (pad, pad, pad, pad)) if pad else images
    dy = torch.randint(0, 2 * pad + 1, (n, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n, 1), device=device, generator=generator)
    rows = dy + torch.arange(h, device=device)
    cols = dx + torch.arange(w, device=device)
    if flip:
        flipped = torch.rand((n, 1), device=device, generator=generator) < 0.5
        cols = torch.where(flipped, cols.flip(1), cols)
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    chans = torch.arange(c, device=device).view(1, c, 1, 1)
    return padded[batch, chans, rows.view(n, 1, h, 1), cols.view(n, 1, 1, w)]


class Normalizer:
    """uint8 -> float32 `(x / 255 - mean) / std`, as one multiply-add."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], device: torch.device):
        mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, -1, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.shift, images.float(), self.scale)
