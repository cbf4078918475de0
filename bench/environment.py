"""What a record says about where and with what code it was produced."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
NUMERICS_PINS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")  # the keys of bench.numerics.PORTABLE
CODE_PACKAGES = ("bench", "methods", "baselines")  # the project's own code, fingerprinted per cell
NOT_CELL_CODE = ("bench.reports", "bench.cli", "bench.grid", "bench.records")  # read records, never make one


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of this checkout and whether it had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": "unknown", "dirty": None}
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status)}


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows: on a CPU run,
    "device_name" alone cannot tell two machines apart, and timings are only comparable
    on the same CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_kernels() -> dict:
    """Which CPU kernels run: the instruction set ATen uses and the pins set (bench/numerics.py)."""
    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "numerics_pins": {k: os.environ[k] for k in NUMERICS_PINS if k in os.environ}}


def cpu_numerics(device: torch.device) -> dict:
    """What a model trained on `device` depends on beyond its recipe, for checkpoint keys: on the
    CPU the kernels and the intra-op thread count (both change reduction order, so the weights);
    nothing on a GPU, where they do not enter."""
    if torch.device(device).type != "cpu":
        return {}
    return {"cpu_kernels": cpu_kernels(), "cpu_threads": torch.get_num_threads()}


def environment(device: torch.device) -> dict:
    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cpu_model": cpu_model(),
        "device_type": device.type,
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
    }
    if device.type == "cuda":
        env["cuda"] = torch.version.cuda
    else:  # CPU numbers depend on the kernels' instruction set (see bench/numerics.py)
        env.update(cpu_kernels())
    return env


def _project_module(name: str) -> bool:
    return name.split(".")[0] in CODE_PACKAGES and not any(name == p or name.startswith(p + ".") for p in NOT_CELL_CODE)


NOT_CELL_CODE_EXTRA = ("bench.tune", "bench.audit", "bench.executors", "bench.method_index", "bench.cli_setup",
                       "bench.locks", "bench.perf")  # plan, schedule or read cells; never change a result


@functools.lru_cache(maxsize=None)
def code_fingerprint(method: str, task: str) -> tuple[str, tuple[str, ...]]:
    """(hash, files) of the source that determines a cell of `method` on `task`: the modules of the
    method's class and its bases, the method packages' private helpers (`_*.py`), and every harness
    module under bench/ except those that only plan, schedule or read cells. Part of a cell's
    identity, so a record made by other code is not reused. A fixed set of files, read from disk:
    the same on every process, whatever it imported before (an import-graph walk was not)."""
    from bench.method import METHODS

    cls = METHODS.get(method).cls
    modules = {c.__module__ for c in cls.__mro__ if _project_module(c.__module__)}
    paths = {Path(sys.modules[m].__file__).resolve() for m in modules if getattr(sys.modules.get(m), "__file__", None)}
    for package in ("methods", "baselines"):
        paths |= {f.resolve() for f in (REPO_ROOT / package).glob("_*.py") if f.name != "__init__.py"}
    skip = tuple(NOT_CELL_CODE) + NOT_CELL_CODE_EXTRA
    for f in (REPO_ROOT / "bench").rglob("*.py"):
        dotted = ".".join(f.relative_to(REPO_ROOT).with_suffix("").parts)
        if not any(dotted == p or dotted.startswith(p + ".") for p in skip):
            paths.add(f.resolve())
    files, digest = [], hashlib.sha256()
    for path in sorted(paths):
        rel = path.relative_to(REPO_ROOT).as_posix() if path.is_relative_to(REPO_ROOT) else path.name
        files.append(rel)
        digest.update(rel.encode() + b"\0" + hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()[:16], tuple(files)
