"""Portable CPU numerics as a profile key: pinned before torch loads (or by running the command
again), with records identical to the CI way of exporting the variables first (issue 11)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import numerics, profiles

REPO = Path(__file__).resolve().parent.parent
PIN_KEYS = tuple(numerics.PORTABLE)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in PIN_KEYS and k != numerics.REEXEC_MARK}
    return {**env, "PYTHONPATH": str(REPO), "UNLEARN_BENCH_OFFLINE": "1", **extra}


def test_the_quick_profile_pins_portable_numerics():
    assert profiles.load("quick").numerics == "portable"
    assert dict(numerics.PORTABLE) == {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41",
                                       "MKL_CBWR": "COMPATIBLE"}


def test_pins_set_before_torch_loads_take_effect():
    code = ("from bench import numerics\nnumerics.apply('portable', None)\nimport torch, os\n"
            "print(torch.backends.cpu.get_cpu_capability(), os.environ['ONEDNN_MAX_CPU_ISA'])")
    out = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert out.stdout.split() == ["DEFAULT", "SSE41"], out.stderr
    native = subprocess.run([sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                            env=_env(), capture_output=True, text=True, timeout=300)
    assert native.returncode == 0  # (the native capability depends on the CPU: AVX2, AVX512, ...)


def test_in_process_after_torch_it_warns_instead_of_pretending(monkeypatch, caplog):
    import torch  # noqa: F401  (loaded, as in any test)

    for key in PIN_KEYS:
        monkeypatch.delenv(key, raising=False)
    numerics.apply("portable", None)
    assert not any(k in os.environ for k in PIN_KEYS)  # records must not claim pins that did not take effect
    assert "native kernels" in caplog.text


PORTABLE_TINY = """
dataset = "digits"
model = "small_cnn"
device = "cpu"
seeds = [0]
scenarios = ["random10"]
methods = ["Original"]
threads = 2
download = false
numerics = "portable"
[train]
epochs = 1
batch_size = 128
"""


@pytest.mark.slow
def test_profile_pinning_gives_the_records_of_the_ci_way(tmp_path):
    """CI used to export the pins before `python -m bench run`; the profile key must give the same
    records, also when torch was already loaded with other settings (the command runs again)."""
    profile = tmp_path / "tiny.toml"
    profile.write_text(PORTABLE_TINY)
    args = ["run", "--profile", str(profile), "--no-progress"]
    ci = subprocess.run([sys.executable, "-m", "bench", *args, "--results", str(tmp_path / "ci"),
                         "--cache-dir", str(tmp_path / "c1")], cwd=tmp_path,
                        env=_env(**numerics.PORTABLE), capture_output=True, text=True, timeout=600)
    assert ci.returncode == 0, ci.stderr
    code = ("import sys, torch\nfrom bench.cli import main\n"  # torch first: native settings are read now
            f"sys.exit(main({args + ['--results', str(tmp_path / 'own'), '--cache-dir', str(tmp_path / 'c2')]!r},"
            " rerun=True))")
    own = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                         timeout=600)
    assert own.returncode == 0, own.stderr

    def records(folder: str) -> dict:
        out = {}
        for path in sorted((tmp_path / folder / "records").glob("*.json")):
            r = json.loads(path.read_text())
            out[path.name] = {k: r[k] for k in ("config_hash", "metrics", "retrain_reference", "split", "cost",
                                                "environment")}
        return out

    mine, theirs = records("own"), records("ci")
    assert sorted(mine) == ["Original__digits__small_cnn__random10__seed0.json",
                            "Retrain__digits__small_cnn__random10__seed0.json"]
    assert mine == theirs
    env = next(iter(mine.values()))["environment"]
    assert env["cpu_capability"] == "DEFAULT" and env["numerics_pins"] == dict(numerics.PORTABLE)
