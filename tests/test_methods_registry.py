"""Every registered method, run through the real harness on a tiny split; none trains on D_t."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from bench.cell import run_cell
from bench.engine import Engine
from bench.method import METHODS
from bench.plugins import load_all_methods

load_all_methods()
# the classifier task's methods (the ssl task's own run end to end in tests/test_ssl.py)
CASES = [(name, kind) for name in METHODS if METHODS.get(name).supports_task("classify")
         for kind in METHODS.get(name).scenarios]


def _watch_test_reads(monkeypatch) -> list[tuple[str, bool]]:
    """(set name, grad enabled) of every batch read from a test-derived set (D_t, its classes)."""
    reads: list[tuple[str, bool]] = []
    batch_at = Engine.batch_at

    def watched(self, data, pos, generator, augment):
        if data.name.startswith("test"):
            reads.append((data.name, torch.is_grad_enabled()))
        return batch_at(self, data, pos, generator, augment)

    monkeypatch.setattr(Engine, "batch_at", watched)
    return reads


@pytest.mark.parametrize("method,kind", CASES, ids=[f"{m}-{k}" for m, k in CASES])
def test_method_runs_on_a_tiny_split(tiny_spec, monkeypatch, method, kind):
    scenario = "random10" if kind == "random" else "class3"
    info = METHODS.get(method)
    reads = _watch_test_reads(monkeypatch)
    record = run_cell(tiny_spec(method, scenario, params=info.smoke))
    assert record["status"] == "ok"
    # D_t is evaluated (metrics, a stop rule's accuracy: no gradient), never trained on
    assert reads and not [name for name, grad in reads if grad], reads
    metrics = record["metrics"]
    for key in ("RA", "UA", "TA", "MIA", "avg_gap"):
        assert math.isfinite(metrics[key]) and 0.0 <= metrics[key] <= 100.0, (key, metrics[key])
    if kind == "class":
        assert "forget_class_TA" in metrics
    counts = record["cost"]["samples"]
    if method == "Original":
        assert counts == {"forward": 0, "backward": 0, "second_order": 0, "evaluation": 0}
    else:  # every method does some work, and the FLOPs follow from what it ran
        assert counts["forward"] > 0 and record["cost"]["pflops"] > 0
    assert record["params"] == dataclasses.asdict(info.params(info.smoke))  # what ran is recorded


def test_gp_full_form_trains_on_the_pool_not_on_d_t(tiny_spec, monkeypatch):
    reads = _watch_test_reads(monkeypatch)
    record = run_cell(tiny_spec("GP", "random10", params={**METHODS.get("GP").smoke, "form": "full"},
                                eval={"nonmember_pool": "test-half"}))
    assert record["status"] == "ok" and not [name for name, grad in reads if grad]
    assert record["evaluation"]["nonmember_pool"]["size"] == 180 and record["evaluation"]["test_size"] == 180


def test_resolving_methods_in_a_fresh_interpreter_sees_the_whole_registry():
    """Commands that resolve names without planning a grid first (tune, imagetext-figures) once
    found an empty registry ("unknown method 'FT-IT'; known: ")."""
    import subprocess
    import sys
    from pathlib import Path

    code = "from bench.method import resolve_methods; print(','.join(m.name for m in resolve_methods(['FT-IT', 'CU'])))"
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, check=True)
    assert sorted(out.stdout.strip().split(",")) == ["CU", "FT-IT"]
