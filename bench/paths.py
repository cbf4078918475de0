"""Where data, caches and results live.

Data: `--data-root`, else $UNLEARN_BENCH_DATA, else ~/.cache/unlearn-bench/data.
Caches (decoded tensors, checkpoints): $UNLEARN_BENCH_CACHE, else ~/.cache/unlearn-bench.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "UNLEARN_BENCH_DATA"
CACHE_ENV = "UNLEARN_BENCH_CACHE"
OFFLINE_ENV = "UNLEARN_BENCH_OFFLINE"


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "unlearn-bench"


def data_root(explicit: str | os.PathLike | None = None) -> Path:
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return cache_dir() / "data"


def offline_by_env() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


LOCAL_RESULTS = Path("results") / "local"  # git-ignored: a user's own runs; results/<profile>/ holds published ones


def local_results(profile_name: str) -> Path:
    return LOCAL_RESULTS / profile_name
