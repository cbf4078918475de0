"""Portable CPU numerics: the same CPU run gives the same numbers on any x86-64 machine.

CPU results depend on the instruction set the kernels use (AVX2, AVX-512, ...): the same
profile on two CPUs trains slightly different models, and a single-seed comparison against a
stored baseline then reports "regressions" that are only kernel noise. A profile with
`numerics = "portable"` (the quick profile, whose results are the committed baseline) pins
ATen's portable kernels, oneDNN's SSE4.1 kernels and MKL's reproducible mode (about 1.5x
slower). The pins are environment variables read once when torch loads, so they are set before
torch is imported; a process that imported torch with other settings runs itself again.
Each record's `environment` says which kernels ran (`cpu_capability`, `numerics_pins`).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Mapping, Sequence

log = logging.getLogger(__name__)

PORTABLE: Mapping[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",  # ATen's portable (non-vectorised-ISA) kernels
    "ONEDNN_MAX_CPU_ISA": "SSE41",  # oneDNN (convolutions) limited to SSE4.1
    "MKL_CBWR": "COMPATIBLE",  # MKL's conditional numerical reproducibility
}
REEXEC_MARK = "UNLEARN_BENCH_NUMERICS_REEXEC"  # set in the re-run process: never loop


def pinned(env: Mapping[str, str] = os.environ) -> bool:
    return all(env.get(k) == v for k, v in PORTABLE.items())


def apply(mode: str, argv: Sequence[str] | None) -> None:
    """Make this process run with `mode`'s numerics ("native": nothing to do).

    Before torch is imported the pins are simply set. After (torch read other settings), the
    command is run again in a fresh interpreter with the pins when `argv` (the command line's
    arguments) is given; without it (an in-process call, e.g. from a test) a warning says the
    numbers are the native kernels', which the records' `environment` shows too.
    """
    if mode != "portable" or pinned():
        return
    if "torch" not in sys.modules:
        os.environ.update(PORTABLE)
        return
    if argv is not None and not os.environ.get(REEXEC_MARK):
        env = {**os.environ, **PORTABLE, REEXEC_MARK: "1"}
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(sys.executable, [sys.executable, "-m", "bench", *argv], env)
    log.warning("this profile asks for portable numerics, but torch was loaded with other settings in this "
                "process; the numbers are the native kernels' (run it as `python -m bench ...` to pin them)")
