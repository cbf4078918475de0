"""Regression rules: which quantity is checked, which way is worse, and by how much it may move.

A tolerance is parsed from `QUANTITY:AMOUNT[:FLOOR]`:

    TA:0.5          absolute: TA may fall by at most 0.5 points
    seconds:20%     relative: seconds may rise by at most 20% of the baseline
    avg_gap:2sd     2 x the baseline's std over seeds, at least that quantity's default floor
    avg_gap:2sd:0.5 the same with an explicit absolute floor (with one seed, sd is
                    unknown and the floor alone applies)

A floor goes with `%` and `sd` only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from bench.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    quantity: str
    higher_is_better: bool
    timing: bool  # skipped when the machines differ
    meaning: str


RULES: dict[str, Rule] = {r.quantity: r for r in (
    Rule("RA", True, False, "retain accuracy must not fall"),
    Rule("TA", True, False, "test accuracy must not fall"),
    Rule("UA_gap", False, False, "|UA - Retrain's UA| must not grow"),
    Rule("MIA_gap", False, False, "|MIA - Retrain's MIA| must not grow"),
    Rule("avg_gap", False, False, "Avg-Gap to Retrain must not grow"),
    Rule("pflops", False, False, "compute must not rise"),
    Rule("seconds", False, True, "wall-clock seconds must not rise"),
)}
ALIASES = {"UA": "UA_gap", "MIA": "MIA_gap", "Avg-Gap": "avg_gap", "gap": "avg_gap", "PFLOPs": "pflops",
           "time": "seconds"}

# Chosen so that a faithful rerun of the quick profile (digits, 1 seed, 2 CPU threads) passes
# and a real worsening fails; see results/README.md for the reasoning behind each number.
DEFAULTS = ("RA:2sd:0.5", "TA:2sd:1", "UA_gap:2sd:2", "MIA_gap:2sd:3", "avg_gap:2sd:1", "pflops:10%",
            "seconds:50%:2")
_AMOUNT = re.compile(r"^(?P<num>\d+(?:\.\d*)?|\.\d+)(?P<unit>%|sd)?$")


@dataclass(frozen=True)
class Tolerance:
    quantity: str
    kind: str  # "abs", "pct" or "sd"
    amount: float
    floor: float | None = None  # None: not given (the quantity's default floor is filled in by `resolve`)

    def allowed(self, baseline: float, spread: float) -> float:
        """How far the quantity may move the wrong way from `baseline` (spread = baseline std over seeds)."""
        if self.kind == "abs":
            return self.amount
        floor = self.floor or 0.0
        if self.kind == "pct":
            return max(abs(baseline) * self.amount / 100.0, floor)
        scaled = self.amount * spread if not math.isnan(spread) else 0.0
        return max(scaled, floor)

    def describe(self, baseline: float, spread: float) -> str:
        allowed = self.allowed(baseline, spread)
        if self.kind == "abs":
            return f"{allowed:.3g}"
        if self.kind == "pct":
            basis = f"{self.amount:g}%"
        else:
            basis = f"{self.amount:g}sd" + (" (1 seed)" if math.isnan(spread) else f" of {spread:.3g}")
        return f"{allowed:.3g} ({basis}, floor {self.floor or 0:g})"

    def text(self) -> str:
        unit = {"abs": "", "pct": "%", "sd": "sd"}[self.kind]
        floor = f":{self.floor:g}" if self.kind != "abs" and self.floor else ""
        return f"{self.quantity}:{self.amount:g}{unit}{floor}"


def canonical_quantity(name: str) -> str:
    name = ALIASES.get(name, name)
    if name not in RULES:
        known = ", ".join(list(RULES) + [f"{a} (= {q})" for a, q in ALIASES.items()])
        raise ConfigError(f"unknown quantity {name!r} in a tolerance; known: {known}")
    return name


def parse(text: str) -> Tolerance:
    """'TA:0.5', 'seconds:20%', 'avg_gap:2sd', 'avg_gap:2sd:0.5' -> Tolerance."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"tolerance {text!r}: write QUANTITY:AMOUNT[:FLOOR], e.g. TA:0.5, seconds:20% or avg_gap:2sd:0.5")
    quantity = canonical_quantity(parts[0])
    m = _AMOUNT.match(parts[1])
    if not m:
        raise ConfigError(f"tolerance {text!r}: the amount must be a number >= 0, optionally followed by % or sd")
    kind = {None: "abs", "%": "pct", "sd": "sd"}[m.group("unit")]
    floor = None
    if len(parts) == 3:
        if kind == "abs":
            raise ConfigError(f"tolerance {text!r}: a floor only goes with a % or sd amount")
        try:
            floor = float(parts[2])
        except ValueError:
            raise ConfigError(f"tolerance {text!r}: the floor must be a number >= 0") from None
        if not (floor >= 0 and math.isfinite(floor)):
            raise ConfigError(f"tolerance {text!r}: the floor must be a number >= 0")
    return Tolerance(quantity, kind, float(m.group("num")), floor)


def resolve(overrides: list[str] | None = None) -> dict[str, Tolerance]:
    """The default tolerances with `overrides` (later wins) applied, keyed by quantity."""
    defaults = {t.quantity: t for t in map(parse, DEFAULTS)}
    chosen = dict(defaults)
    for text in overrides or []:
        t = parse(text)
        if t.kind != "abs" and t.floor is None:
            t = Tolerance(t.quantity, t.kind, t.amount, defaults[t.quantity].floor)
        chosen[t.quantity] = t
    return chosen
