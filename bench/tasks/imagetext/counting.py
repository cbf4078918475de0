"""FLOP accounting for a dual encoder: the image and the text tower are counted apart.

Each tower gets its own `SampleCounter` (the harness's hooks: every sample going forward,
every sample whose gradient flows back); the cost follows the harness's convention per
tower (forward 2F, backward 4F, F = fvcore's multiply-adds for one sample in training mode),
F_image for one 32x32 image and F_text for one caption of `seq_len` tokens. The logits
(an N x M matrix of dot products or distances) and the Lorentz maps are not counted: at
batch 256 and 128 dimensions they are under 0.1% of a step.
"""

from __future__ import annotations

import copy
import types
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn

from bench.flops import SampleCounter, SampleCounts


class TowerCounter:
    """Counts samples through the image tower and the text tower of the models attached."""

    def __init__(self) -> None:
        self.image = SampleCounter()
        self.text = SampleCounter()

    def attach(self, model: nn.Module) -> None:
        self.image.attach(types.SimpleNamespace(backbone=model.image_tower))
        self.text.attach(types.SimpleNamespace(backbone=model.text_tower))

    def detach(self) -> None:
        self.image.detach()
        self.text.detach()

    def counts(self) -> dict[str, dict[str, int]]:
        return {"image": self.image.counts.as_dict(), "text": self.text.counts.as_dict()}


@dataclass(frozen=True)
class DualCost:
    image_macs: float  # F for one image
    text_macs: float  # F for one caption

    def pflops(self, counts: dict[str, dict[str, int]]) -> float:
        total = 0.0
        for tower, f in (("image", self.image_macs), ("text", self.text_macs)):
            c = SampleCounts(**counts[tower])
            total += 2 * f * c.forward + 4 * f * c.backward
        return total / 1e15


def _fvcore_macs(module: nn.Module, example: torch.Tensor) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fvcore.nn import FlopCountAnalysis

        probe = copy.deepcopy(module).cpu().float().train()
        analysis = FlopCountAnalysis(probe, example)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return float(analysis.total())


_COSTS: dict[str, DualCost] = {}


def dual_cost(model: nn.Module, arch_key: str) -> DualCost:
    """F per image and per caption for this architecture (measured once per process)."""
    if arch_key not in _COSTS:
        tokens = torch.full((1, model.text_tower.positions.shape[0]), model.text_tower.eos_id, dtype=torch.long)
        _COSTS[arch_key] = DualCost(_fvcore_macs(model.image_tower, torch.zeros(1, 3, 32, 32)),
                                    _fvcore_macs(model.text_tower, tokens))
    return _COSTS[arch_key]
