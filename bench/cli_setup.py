"""What every command that runs cells (`run`, `perf --methods`, `embed`) sets up, in one place:
the options they share, the profile, every check of what the user passed, the CPU numerics,
threads, downloads, planning and the device.

Checks come first and are cheap: the profile, method names and hyperparameters (read from
source by bench.method_index, without torch), the folders to read and write. Only then is
torch imported (after the profile's numerics are pinned), the grid planned and the device
and data checked. A mistake is a one-line `ConfigError` before any cell runs.

A command adds `add_cell_options(parser)` to its parser, builds `CellSetup.from_args(args)`,
checks its own outputs with `writable_folder`, and calls `setup.plan()`. A new shared flag
(e.g. an executor's `--workers`) goes into `add_cell_options` and `CellSetup`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from bench import numerics, paths, profiles
from bench.errors import ConfigError
from bench.method_index import method_index, resolve_names
from bench.profiles import Profile

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar")  # --data-root may name an archive (CIFAR-10 JPEG)


# --------------------------------------------------------------------------- option parsing


def csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def seeds(text: str) -> list[int]:
    try:
        values = [int(t) for t in csv(text)]
    except ValueError:
        raise ConfigError(f"--seeds takes integers separated by commas, got {text!r}") from None
    if not values or any(s < 0 for s in values):
        raise ConfigError(f"--seeds takes integers >= 0, got {text!r}")
    return values


def at_least(minimum: int, flag: str):
    """An argparse type: an integer >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{flag} takes an integer, got {text!r}") from None
        if value < minimum:
            raise ConfigError(f"{flag} must be >= {minimum}, got {value}")
        return value

    return parse


def overrides(items: Sequence[str]) -> dict[str, dict[str, Any]]:
    """--set METHOD.key=value (repeatable) -> {METHOD: {key: "value"}} (typed when checked)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, eq, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not eq or not dot or not method.strip() or not key.strip():
            raise ConfigError(f"--set takes METHOD.key=value, got {item!r}")
        out.setdefault(method.strip(), {})[key.strip()] = value.strip()
    return out


def add_cell_options(parser: argparse.ArgumentParser, *, profile_help: str = "") -> None:
    """The options of every command that runs cells."""
    parser.add_argument("--profile", default="quick",
                        help=profile_help or "profile name or .toml path (default: quick, offline digits on the CPU)")
    parser.add_argument("--device", help="auto, cpu or cuda (default: the profile's)")
    parser.add_argument("--data-root", help=f"where datasets are looked for (default: ${paths.DATA_ENV} or "
                                            "~/.cache/unlearn-bench/data)")
    parser.add_argument("--cache-dir", help=f"decoded tensors and checkpoints (default: ${paths.CACHE_ENV} or "
                                            "~/.cache/unlearn-bench)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.key=value",
                        help="override a method hyperparameter (repeatable)")
    parser.add_argument("--threads", type=at_least(1, "--threads"), help="CPU threads (default: the profile's)")
    parser.add_argument("--offline", action="store_true", help=f"never try to download data (also ${paths.OFFLINE_ENV}=1)")


# --------------------------------------------------------------------------- paths


def writable_folder(path: Path, flag: str) -> Path:
    """`path` as a folder this process can write into, created if missing; else a one-line ConfigError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{flag} {path} is a file, not a folder; pass a folder (it is created if missing)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"{flag} {path} is not a folder this user can write into ({exc.strerror}); "
                          "pass another folder") from None
    return path


def writable_file(path: Path, flag: str) -> Path:
    """`path` as a file that can be (re)written: not a folder, in a writable folder."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{flag} {path} is a folder; pass a file name")
    writable_folder(path.parent, f"{flag}'s folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{flag} {path} is not writable; pass another file")
    return path


def data_root(explicit: str | None) -> Path:
    root = paths.data_root(explicit)
    if root.is_file() and not root.name.endswith(ARCHIVE_SUFFIXES):
        raise ConfigError(f"--data-root {root} is a file; pass the folder that holds the datasets "
                          "(only a CIFAR-10 JPEG archive may be named directly)")
    return root


def cache_dir(explicit: str | None) -> Path:
    return writable_folder(paths.cache_dir(explicit), "--cache-dir" if explicit else f"cache folder (${paths.CACHE_ENV})")


# --------------------------------------------------------------------------- the set-up


@dataclass
class CellSetup:
    """A checked request for cells; `plan()` turns it into CellSpecs."""

    profile: Profile
    methods: list[str]  # method names, load order
    overrides: dict[str, dict[str, Any]]
    data_root: Path
    cache_dir: Path
    download: bool
    threads: int | None
    device: str | None  # None: the profile's
    scenarios: list[str] | None = None
    seeds: list[int] | None = None
    argv: Sequence[str] | None = None  # the command line, to run it again with pinned numerics
    replicas: int | None = None  # audit replicas (None: the profile's [audit])
    notes: list[str] = field(default_factory=list)

    @classmethod
    def from_args(cls, args: argparse.Namespace, *, methods: list[str] | None, scenarios: list[str] | None = None,
                  seeds: list[int] | None = None, argv: Sequence[str] | None = None) -> "CellSetup":
        """Load the profile and check everything the user passed (no torch yet).
        `methods`: names or globs; None: the profile's list (all if it has none)."""
        profile = profiles.load(args.profile)
        chosen = resolve_names(methods if methods is not None else (list(profile.methods) if profile.methods else None))
        extra = overrides(args.overrides)
        index = method_index()
        for name in list(profile.params) + list(extra):
            index.get(name)  # a typo in a [params.X] table or --set is an error, not a silent no-op
        for name in chosen:
            entry = index.get(name)
            smoke = entry.smoke if profile.smoke else {}
            entry.check({**smoke, **profile.params.get(name, {}), **extra.get(name, {})})
        return cls(
            profile=profile, methods=chosen, overrides=extra, data_root=data_root(args.data_root),
            cache_dir=cache_dir(args.cache_dir),
            download=profile.download and not args.offline and not paths.offline_by_env(),
            threads=args.threads or profile.threads, device=args.device, scenarios=scenarios, seeds=seeds, argv=argv,
        )

    def start_torch(self) -> None:
        """Pin the profile's numerics (before torch loads), then import torch and set the threads."""
        numerics.apply(self.profile.numerics, self.argv)
        import torch

        if self.threads:
            torch.set_num_threads(self.threads)

    def plan(self, *, check_data: bool = True) -> list:
        """The cells (Retrain first), after checking the device and, if asked, that the data is there."""
        self.start_torch()
        from bench.cell import resolve_device
        from bench.data.catalog import load_dataset
        from bench.grid import plan
        from bench.method import resolve_methods
        from bench.plugins import load_all_methods

        load_all_methods()
        cells, self.notes = plan(self.profile, resolve_methods(self.methods), scenarios=self.scenarios, seeds=self.seeds,
                                 device=self.device, data_root=self.data_root, cache_dir=self.cache_dir,
                                 download=self.download, overrides=self.overrides, replicas=self.replicas)
        if self.threads != self.profile.threads:
            cells = [dataclasses.replace(c, threads=self.threads) for c in cells]
        resolve_device(cells[0].device)  # a missing GPU is a usage error now, not 40 failed cells later
        if check_data:
            load_dataset(cells[0].dataset, self.data_root, cache=self.cache_dir, download=self.download)
        return cells
