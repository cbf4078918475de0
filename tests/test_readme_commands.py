"""Every command the README lists, run the way a newcomer would: in a fresh copy of the
project, from its root, as `python -m bench ...` subprocesses, checking exit statuses and what
each writes (issue 11). The expensive main job runs on a tiny profile (Original + FT, one
1-epoch scenario) named `quick`, so the README's defaults (results/local/quick) line up; the
full quick profile runs in CI (.ci/run)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TINY_QUICK = """
description = "tiny stand-in for the quick profile (same name, so the README's defaults apply)"
dataset = "digits"
model = "small_cnn"
device = "cpu"
seeds = [0]
scenarios = ["random10"]
methods = ["Original", "FT"]
threads = 2
download = false
numerics = "portable"
[train]
epochs = 1
batch_size = 128
[params.FT]
epochs = 1
[tune]
trials = 1
repeats = 1
"""


def documented_subcommands() -> set[str]:
    text = (REPO / "README.md").read_text()
    return set(re.findall(r"python -m bench ([\w-]+)", text))


def fresh_copy(dest: Path) -> Path:
    """The project's files as a clone would have them (tracked and new files; nothing ignored)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.mark.slow
def test_every_readme_command_works_in_a_fresh_folder(tmp_path):
    project = fresh_copy(tmp_path / "unlearn-bench")
    (tmp_path / "profiles").mkdir()
    tiny = tmp_path / "profiles" / "quick.toml"
    tiny.write_text(TINY_QUICK)
    env = {**os.environ, "PYTHONPATH": str(project), "UNLEARN_BENCH_CACHE": str(tmp_path / "cache"),
           "UNLEARN_BENCH_OFFLINE": "1"}
    env.pop("UNLEARN_BENCH_DATA", None)
    published = {p: p.read_bytes() for p in (project / "results" / "quick").rglob("*") if p.is_file()}
    ran: set[str] = set()

    def bench(*args: str, expect: int = 0) -> str:
        out = subprocess.run([sys.executable, "-m", "bench", *args], cwd=project, env=env, capture_output=True,
                             text=True, timeout=600)
        assert out.returncode == expect, f"bench {' '.join(args)} -> {out.returncode}\n{out.stdout}\n{out.stderr}"
        ran.add(args[0])
        return out.stdout + out.stderr

    assert "usage:" in bench("--help")
    assert "FT" in bench("list") and "quick" in bench("list")
    # the main job (README: `python -m bench run --all`), on the tiny stand-in
    out = bench("run", "--profile", str(tiny), "--no-progress")
    assert "| FT |" in out
    local = project / "results" / "local" / "quick"
    assert sorted(p.name for p in (local / "records").glob("*.json")) == [
        "FT__digits__small_cnn__random10__seed0.json", "Original__digits__small_cnn__random10__seed0.json",
        "Retrain__digits__small_cnn__random10__seed0.json"]
    assert "3 of 3 cells already done" in bench("run", "--profile", str(tiny), "--no-progress")  # a rerun resumes
    for fmt in ("md", "csv", "latex"):
        bench("table", "--format", fmt)
    assert {"summary.md", "summary.csv", "summary.tex"} <= {p.name for p in local.iterdir()}
    bench("leaderboard")
    assert (local / "leaderboard.html").is_file() and (local / "figures" / "tradeoff.svg").is_file()
    bench("baseline", "--results", str(local), "--out", str(tmp_path / "baseline.json"))
    assert "OK:" in bench("compare", str(local), "--against", str(tmp_path / "baseline.json"), "--skip-timing")
    # the README's compare against the published baseline: the tiny stand-in is not the quick profile,
    # so it must fail as a comparison (exit 1, cells missing), never crash
    assert "REGRESSION" in bench("compare", "results/local/quick", "--against", "results/quick/baseline.json",
                                 "--skip-timing", expect=1)
    out = bench("embed", "--profile", str(tiny), "--method", "FT", "--scenario", "random10", "--view", "poincare",
                "--max-points", "60")
    assert (local / "figures" / "embed_FT_random10_s0_poincare.png").is_file()
    bench("perf", "--models", "small_cnn", "--batch-sizes", "64", "--steps", "2")
    assert "| FT |" in bench("perf", "--methods", "FT", "--profile", str(tiny), "--steps", "2")
    # commands whose real runs are covered by their own tests (test_tune, test_audit_replicas,
    # test_imagetext): here, that each answers a newcomer with its help or a one-line refusal
    assert "--trials" in bench("tune", "--help")
    # one real trial through `python -m bench` (its own argv and numerics, the method registry loaded)
    assert "quick/FT/random: 1 complete" in bench("tune", "--profile", str(tiny), "--methods", "FT", "--kinds", "random",
                                                    "--no-progress", "--out", str(tmp_path / "tune"))
    assert "run `bench run --replicas K`" in bench("audit", "--results", str(local))  # no replicas yet: says what to do
    bench("imagetext-figures", "--profile", str(tiny), expect=2)  # not an imagetext profile
    # the README's CIFAR-10 example without the data: one line saying where it looked, exit 2
    empty = tmp_path / "no-data"
    empty.mkdir()
    assert "cifar10: not found" in bench("run", "--profile", "cifar10", "--data-root", str(empty), expect=2)

    assert documented_subcommands() <= ran, documented_subcommands() - ran
    after = {p: p.read_bytes() for p in (project / "results" / "quick").rglob("*") if p.is_file()}
    assert after == published  # the published results are never rewritten by a user's commands
