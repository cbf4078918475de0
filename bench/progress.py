"""Progress bars over cells and over epochs, with ETA (tqdm, on stderr).

Bars show only on a terminal; in a log the grid prints one line per finished cell.
"""

from __future__ import annotations

import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")


class Progress:
    def __init__(self, enabled: bool | None = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled

    def cells(self, total: int, desc: str = "cells") -> tqdm:
        return tqdm(total=total, desc=desc, unit="cell", disable=not self.enabled, position=0, dynamic_ncols=True)

    def epochs(self, iterable: Iterable[T], desc: str, total: int | None = None) -> tqdm:
        """An iterator over `iterable` with a bar; `.set_postfix(...)` shows a running figure."""
        return tqdm(iterable, desc=desc, total=total, unit="ep", leave=False, disable=not self.enabled, position=1, dynamic_ncols=True)

    def write(self, line: str) -> None:
        if self.enabled:
            tqdm.write(line, file=sys.stderr)
        else:
            print(line, file=sys.stderr, flush=True)


SILENT = Progress(enabled=False)
