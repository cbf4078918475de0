"""A test-only method that kills its own worker process: imported by tests/test_executors.py only."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bench.hparams import hp
from bench.method import UnlearnContext, register_method


@register_method("TestCrash")
@dataclass(frozen=True)
class TestCrash:
    """Test only: exits its process (os._exit) on its first `crashes` attempts, counted in `attempts_dir`."""

    attempts_dir: str = hp("", doc="folder where each attempt leaves a file")
    crashes: int = hp(1, low=0, doc="attempts that kill the process before one runs through")

    def run(self, ctx: UnlearnContext) -> None:
        folder = Path(self.attempts_dir)
        attempt = len(list(folder.glob("attempt-*")))
        (folder / f"attempt-{attempt}-pid{os.getpid()}").touch()
        if attempt < self.crashes:
            os._exit(3)  # as a kill would: no exception, no cleanup, no result
