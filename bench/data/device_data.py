"""A labelled set of images resident on the compute device as uint8."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DeviceData:
    """Images (N, C, H, W) uint8, labels (N,) int64 and each sample's index in its source split.

    `index` keeps provenance: for a forget or retain set it holds the training-set
    indices, so a method can never confuse "position in this set" with "which image".
    """

    images: torch.Tensor
    labels: torch.Tensor
    index: torch.Tensor
    name: str = ""

    def __post_init__(self) -> None:
        n = self.images.shape[0]
        if self.labels.shape != (n,) or self.index.shape != (n,):
            raise ValueError(f"{self.name}: {n} images, labels {tuple(self.labels.shape)}, index {tuple(self.index.shape)}")
        if self.images.dtype != torch.uint8:
            raise ValueError(f"{self.name}: images must be uint8, got {self.images.dtype}")

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def device(self) -> torch.device:
        return self.images.device

    def take(self, positions: torch.Tensor, name: str | None = None) -> "DeviceData":
        """The samples at `positions` (positions in this set, not source indices)."""
        positions = positions.to(self.device)
        return DeviceData(self.images[positions], self.labels[positions], self.index[positions], name or self.name)

    def where(self, mask: torch.Tensor, name: str | None = None) -> "DeviceData":
        return self.take(torch.nonzero(mask.to(self.device), as_tuple=False).flatten(), name)

    def of_class(self, cls: int) -> "DeviceData":
        return self.where(self.labels == cls, f"{self.name}[class {cls}]")

    def without_class(self, cls: int) -> "DeviceData":
        return self.where(self.labels != cls, f"{self.name}[not class {cls}]")

    def head(self, n: int) -> "DeviceData":
        """The first `n` samples in order (fewer if the set is smaller)."""
        n = min(n, len(self))
        return DeviceData(self.images[:n], self.labels[:n], self.index[:n], f"{self.name}[:{n}]")

    def to(self, device: torch.device | str) -> "DeviceData":
        return DeviceData(self.images.to(device), self.labels.to(device), self.index.to(device), self.name)
