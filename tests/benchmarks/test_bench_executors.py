"""Quick grid wall-clock with 1 and 2 local workers and with Ray on 2 CPUs; records must agree.

Skipped in the normal test run (addopts has --benchmark-skip). Run with portable numerics (the
pins of bench/numerics.py, which `bench run` applies for the quick profile; this benchmark calls
the grid directly, so set them in the environment):

    ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=SSE41 MKL_CBWR=COMPATIBLE \
    python -m pytest tests/benchmarks/test_bench_executors.py --benchmark-only -s

Each configuration runs the whole quick grid once (a fresh results folder and checkpoint
cache, so Original and Retrain are trained every time); the ratios print at the end. The
records of every configuration must equal the one-process run's (timings, creation time
and the environment, which holds the thread count, aside).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = {
    "1 worker": ["--workers", "1"],
    "2 workers": ["--workers", "2"],
    "ray 2 CPUs": ["--executor", "ray", "--workers", "2"],
}
_seconds: dict[str, float] = {}
_records: dict[str, dict] = {}


def comparable(record: dict) -> dict:
    """Metrics and identity; the stored logits' hash ("outputs") changes in the last bits with the thread count."""
    return {k: v for k, v in record.items() if k not in ("timing", "created", "environment", "outputs")}


def _run_quick(tmp: Path, args: list[str]) -> float:
    env = {**os.environ, "UNLEARN_BENCH_CACHE": str(tmp / "cache"), "UNLEARN_BENCH_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bench", "run", "--all", "--no-progress", "--results", str(tmp / "results"), *args],
                   cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


@pytest.mark.parametrize("name", list(CONFIGS))
def test_quick_grid_wall_clock(benchmark, tmp_path, name):
    if name.startswith("ray"):
        pytest.importorskip("ray")
    seconds = benchmark.pedantic(_run_quick, args=(tmp_path, CONFIGS[name]), rounds=1, iterations=1)
    _seconds[name] = seconds
    records = {p.name: comparable(json.loads(p.read_text())) for p in (tmp_path / "results" / "records").glob("*.json")}
    assert records and all(r["status"] == "ok" for r in records.values())
    _records.setdefault("1 worker", records)
    assert records == _records["1 worker"]
    base = _seconds.get("1 worker")
    print(f"\nquick grid, {name}: {seconds:.1f} s" + (f" ({base / seconds:.2f}x the 1-worker speed)" if base else ""))
