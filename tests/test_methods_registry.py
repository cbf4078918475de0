"""Every registered method, run through the real harness on a tiny split."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench.cell import run_cell
from bench.method import METHODS
from bench.plugins import load_all_methods

load_all_methods()
CASES = [(name, kind) for name in METHODS for kind in METHODS.get(name).scenarios
         if METHODS.get(name).supports_task("classify")]  # other tasks' methods: their own tests


@pytest.mark.parametrize("method,kind", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_method_runs_on_a_tiny_split(tiny_spec, method, kind):
    scenario = "random10" if kind == "random" else "class3"
    info = METHODS.get(method)
    record = run_cell(tiny_spec(method, scenario, params=info.smoke))
    assert record["status"] == "ok"
    metrics = record["metrics"]
    for key in ("RA", "UA", "TA", "MIA", "avg_gap"):
        assert math.isfinite(metrics[key]) and 0.0 <= metrics[key] <= 100.0, (key, metrics[key])
    if kind == "class":
        assert "forget_class_TA" in metrics
    counts = record["cost"]["samples"]
    if method == "Original":
        assert counts == {"forward": 0, "backward": 0, "second_order": 0}
    else:  # every method does some work, and the FLOPs follow from what it ran
        assert counts["forward"] > 0 and record["cost"]["pflops"] > 0
    assert record["params"] == dataclasses.asdict(info.params(info.smoke))  # what ran is recorded
