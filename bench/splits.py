"""Forgetting scenarios and the forget/retain splits they draw.

`random<P>` forgets round(P% * N) training samples drawn with a seeded torch
generator on the CPU (so the indices do not depend on the device); `class<C>`
forgets every training sample of class C (`class` alone: the profile's default
class). A split records the recipe to redraw it and a hash of its indices.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

import torch

from bench.errors import ConfigError

_RANDOM = re.compile(r"^random(\d+(?:\.\d+)?)$")
_CLASS = re.compile(r"^class(\d+)?$")


@dataclass(frozen=True)
class Scenario:
    name: str
    kind: str  # "random" or "class"
    fraction: float | None = None  # random: fraction of the training set forgotten
    forget_class: int | None = None  # class: the class forgotten

    @property
    def is_class(self) -> bool:
        return self.kind == "class"


def parse_scenario(text: str, num_classes: int, default_class: int = 9) -> Scenario:
    """'random10' -> 10% random; 'class' -> the default class; 'class3' -> class 3."""
    name = text.strip().lower()
    if m := _RANDOM.match(name):
        pct = float(m.group(1))
        if not 0 < pct < 100:
            raise ConfigError(f"scenario {text!r}: the forget percentage must be in (0, 100)")
        return Scenario(name=name, kind="random", fraction=pct / 100.0)
    if m := _CLASS.match(name):
        cls = default_class if m.group(1) is None else int(m.group(1))
        if not 0 <= cls < num_classes:
            raise ConfigError(f"scenario {text!r}: class {cls} is outside 0..{num_classes - 1}")
        return Scenario(name=f"class{cls}", kind="class", forget_class=cls)
    raise ConfigError(f"unknown scenario {text!r}; use random<percent> (e.g. random10) or class[<id>] (e.g. class9)")


def derive_seed(*parts: object) -> int:
    """A 63-bit seed derived from `parts`, stable across runs and machines."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def index_hash(indices: torch.Tensor) -> str:
    return hashlib.sha256(indices.to(torch.int64).cpu().numpy().tobytes()).hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    scenario: Scenario
    seed: int
    n_train: int
    forget: torch.Tensor  # sorted training-set indices (int64, CPU)
    retain: torch.Tensor  # the rest, sorted

    @property
    def forget_hash(self) -> str:
        return index_hash(self.forget)

    def recipe(self) -> dict:
        """Everything needed to redraw the same forget indices."""
        if self.scenario.kind == "random":
            how = "sorted(torch.randperm(n_train, generator=torch.Generator('cpu').manual_seed(seed))[:n_forget])"
            return {"kind": "random", "fraction": self.scenario.fraction, "n_train": self.n_train,
                    "n_forget": len(self.forget), "seed": self.seed, "draw": how}
        return {"kind": "class", "class": self.scenario.forget_class, "n_train": self.n_train,
                "n_forget": len(self.forget), "draw": "every training index whose label is the class"}

    def describe(self) -> dict:
        return {"recipe": self.recipe(), "forget_hash": self.forget_hash, "n_forget": len(self.forget), "n_retain": len(self.retain)}


def draw_split(scenario: Scenario, train_labels: torch.Tensor, seed: int) -> Split:
    n = train_labels.shape[0]
    if scenario.kind == "random":
        n_forget = int(round(scenario.fraction * n))
        if not 0 < n_forget < n:
            raise ConfigError(f"scenario {scenario.name} forgets {n_forget} of {n} samples; choose another percentage")
        gen = torch.Generator(device="cpu").manual_seed(seed)
        forget = torch.randperm(n, generator=gen)[:n_forget].sort().values
    else:
        forget = torch.nonzero(train_labels.cpu() == scenario.forget_class, as_tuple=False).flatten()
        if len(forget) == 0:
            raise ConfigError(f"scenario {scenario.name}: no training sample has class {scenario.forget_class}")
    keep = torch.ones(n, dtype=torch.bool)
    keep[forget] = False
    retain = torch.nonzero(keep, as_tuple=False).flatten()
    return Split(scenario=scenario, seed=seed, n_train=n, forget=forget.to(torch.int64), retain=retain.to(torch.int64))
