"""SimCLR-style views as batched tensor ops on the device (self-supervised training and EncoderMI).

torchvision's pipeline, per sample, without per-sample Python:
RandomResizedCrop(size, scale, ratio (3/4, 4/3)) -> RandomHorizontalFlip(0.5) ->
RandomApply(ColorJitter(b, c, s, h), p) -> RandomGrayscale(p).

- The crop rectangle is drawn as torchvision draws it (area fraction ~ U(scale), log-ratio
  uniform, up to 10 tries, else the whole image), then resampled bilinearly to `size` with one
  `affine_grid`/`grid_sample` per batch (the flip is a sign in the same affine map).
- ColorJitter applies brightness, contrast, saturation and hue in a random order per sample
  (torchvision draws one order per call, i.e. per sample); every factor is drawn per sample.
- Grey images (one channel) get crop and flip only: colour jitter and greyscale need RGB.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601-2 luma, as PIL's convert("L"), which torchvision uses on PIL images (its tensor path: 0.2989)


@dataclass(frozen=True)
class ViewSpec:
    size: int = 32
    scale: tuple[float, float] = (0.2, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip: bool = True
    jitter: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.1)  # brightness, contrast, saturation, hue
    jitter_p: float = 0.8
    grey_p: float = 0.2


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator, device) -> torch.Tensor:
    return torch.rand(shape, device=device, generator=generator) * (high - low) + low


def crop_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
               generator: torch.Generator, device, tries: int = 10) -> torch.Tensor:
    """(n, 4) float boxes (top, left, h, w) drawn as torchvision's RandomResizedCrop.get_params."""
    area = height * width
    s = _uniform((n, tries), scale[0], scale[1], generator, device)
    log_r = _uniform((n, tries), math.log(ratio[0]), math.log(ratio[1]), generator, device)
    r = torch.exp(log_r)
    w = torch.round(torch.sqrt(area * s * r))
    h = torch.round(torch.sqrt(area * s / r))
    ok = (w > 0) & (h > 0) & (w <= width) & (h <= height)
    first = ok.to(torch.int8).argmax(dim=1, keepdim=True)
    found = ok.any(dim=1)
    w = torch.where(found, w.gather(1, first).squeeze(1), torch.full((n,), float(width), device=device))
    h = torch.where(found, h.gather(1, first).squeeze(1), torch.full((n,), float(height), device=device))
    # torchvision's fallback for square images is the whole image; a non-square one clamps the ratio
    in_ratio = width / height
    if not found.all() and not (ratio[0] <= in_ratio <= ratio[1]):
        fw, fh = (width, round(width / ratio[0])) if in_ratio < ratio[0] else (round(height * ratio[1]), height)
        w = torch.where(found, w, torch.full_like(w, float(fw)))
        h = torch.where(found, h, torch.full_like(h, float(fh)))
    u = torch.rand((n, 2), device=device, generator=generator)
    top = torch.floor(u[:, 0] * (height - h + 1))
    left = torch.floor(u[:, 1] * (width - w + 1))
    return torch.stack([top, left, h, w], dim=1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, size: int, flip: torch.Tensor | None) -> torch.Tensor:
    """Crop each image to its box and resize it to size x size (bilinear, pixel centres as
    torchvision's resize), mirrored where `flip`. `images` float (N, C, H, W).

    Sample points are clamped to the centres of the box's own edge pixels, as resizing the
    cropped image does: without the clamp, the outer rows of an enlarged crop blend in the
    pixels just outside the box."""
    n, c, height, width = images.shape
    top, left, h, w = boxes.unbind(1)
    sx = w / width
    if flip is not None:
        sx = torch.where(flip, -sx, sx)
    theta = torch.zeros((n, 2, 3), device=images.device, dtype=images.dtype)
    theta[:, 0, 0] = sx
    theta[:, 0, 2] = (2 * left + w) / width - 1
    theta[:, 1, 1] = h / height
    theta[:, 1, 2] = (2 * top + h) / height - 1
    grid = F.affine_grid(theta, [n, c, size, size], align_corners=False)
    # normalised -> pixel-centre coordinates, clamped to the box's first and last pixel, and back
    extent = torch.tensor([width, height], device=images.device, dtype=images.dtype)
    low = torch.stack([left, top], dim=1).view(n, 1, 1, 2)
    high = low + torch.stack([w, h], dim=1).view(n, 1, 1, 2) - 1
    pixel = ((grid + 1) * extent - 1) / 2
    grid = (2 * torch.minimum(torch.maximum(pixel, low), high) + 1) / extent - 1
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def grey(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    return (GREY_WEIGHTS[0] * r + GREY_WEIGHTS[1] * g + GREY_WEIGHTS[2] * b).unsqueeze(1)


def _blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    f = factor.view(-1, 1, 1, 1)
    return (f * x + (1 - f) * other).clamp(0, 1)


def rgb_to_hsv(x: torch.Tensor) -> torch.Tensor:
    r, g, b = x.unbind(1)
    maxc, _ = x.max(dim=1)
    minc, _ = x.min(dim=1)
    same = maxc == minc
    cr = maxc - minc
    ones = torch.ones_like(maxc)
    s = cr / torch.where(same, ones, maxc)
    div = torch.where(same, ones, cr)
    rc, gc, bc = (maxc - r) / div, (maxc - g) / div, (maxc - b) / div
    hr = (maxc == r) * (bc - gc)
    hg = ((maxc == g) & (maxc != r)) * (2.0 + rc - bc)
    hb = ((maxc != g) & (maxc != r)) * (4.0 + gc - rc)
    h = torch.fmod((hr + hg + hb) / 6.0 + 1.0, 1.0)
    return torch.stack([h, s, maxc], dim=1)


def hsv_to_rgb(x: torch.Tensor) -> torch.Tensor:
    h, s, v = x.unbind(1)
    i = torch.floor(h * 6.0)
    f = h * 6.0 - i
    i = i.to(torch.int64) % 6
    p = (v * (1.0 - s)).clamp(0, 1)
    q = (v * (1.0 - s * f)).clamp(0, 1)
    t = (v * (1.0 - s * (1.0 - f))).clamp(0, 1)
    table = torch.stack([  # (3 channels, 6 sectors, N, H, W)
        torch.stack([v, q, p, p, t, v]), torch.stack([t, v, v, q, p, p]), torch.stack([p, p, t, v, v, q])])
    onehot = F.one_hot(i, 6).permute(3, 0, 1, 2).to(x.dtype)  # (6, N, H, W)
    return (table * onehot.unsqueeze(0)).sum(1).permute(1, 0, 2, 3)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, 0] + shift.view(-1, 1, 1), 1.0)
    return hsv_to_rgb(torch.stack([h, hsv[:, 1], hsv[:, 2]], dim=1))


def colour_jitter(x: torch.Tensor, strength: tuple[float, float, float, float], apply: torch.Tensor,
                  generator: torch.Generator) -> torch.Tensor:
    """torchvision's ColorJitter per sample (random order of the four ops), where `apply`."""
    n, device = x.shape[0], x.device
    b, c, s, h = strength
    fb = _uniform((n,), max(0.0, 1 - b), 1 + b, generator, device)
    fc = _uniform((n,), max(0.0, 1 - c), 1 + c, generator, device)
    fs = _uniform((n,), max(0.0, 1 - s), 1 + s, generator, device)
    fh = _uniform((n,), -h, h, generator, device)
    order = torch.rand((n, 4), device=device, generator=generator).argsort(dim=1)
    out = x
    for slot in range(4):
        candidates = (
            (out * fb.view(-1, 1, 1, 1)).clamp(0, 1),
            _blend(out, grey(out).mean(dim=(1, 2, 3), keepdim=True), fc),
            _blend(out, grey(out), fs),
            adjust_hue(out, fh),
        )
        op = order[:, slot].view(-1, 1, 1, 1)
        out = torch.where(op == 0, candidates[0], torch.where(op == 1, candidates[1],
                          torch.where(op == 2, candidates[2], candidates[3])))
    return torch.where(apply.view(-1, 1, 1, 1), out, x)


def views(images: torch.Tensor, spec: ViewSpec, generator: torch.Generator) -> torch.Tensor:
    """One random view of each uint8 image (N, C, H, W): float in [0, 1], (N, C, size, size)."""
    n, c, height, width = images.shape
    device = images.device
    x = images.float() / 255.0
    boxes = crop_boxes(n, height, width, spec.scale, spec.ratio, generator, device)
    flip = torch.rand((n,), device=device, generator=generator) < 0.5 if spec.flip else None
    x = resized_crop(x, boxes, spec.size, flip)
    if c == 3:
        apply = torch.rand((n,), device=device, generator=generator) < spec.jitter_p
        x = colour_jitter(x, spec.jitter, apply, generator)
        to_grey = torch.rand((n,), device=device, generator=generator) < spec.grey_p
        x = torch.where(to_grey.view(-1, 1, 1, 1), grey(x).expand(-1, 3, -1, -1), x)
    return x
