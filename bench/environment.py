"""What a record says about where and with what code it was produced."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
NUMERICS_PINS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_CBWR")  # the keys of bench.numerics.PORTABLE


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
