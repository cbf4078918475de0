"""Advisory file locks (flock) between processes sharing a cache or results folder.

The lock belongs to an open file description, so the kernel releases it when its holder
exits for any reason (a killed worker never leaves a stale lock). flock works across
processes of one machine and, on Linux, on NFS (emulated with POSIX byte-range locks);
a cluster's shared checkpoint storage must support one or the other.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class FileLock:
    """`with FileLock(path):` blocks until held; `try_acquire()` does not block."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        return self._acquire(blocking=False)

    def acquire(self) -> None:
        self._acquire(blocking=True)

    def _acquire(self, blocking: bool) -> bool:
        if self._fd is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
