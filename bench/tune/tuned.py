"""Tuned settings as profile data: the file a profile names with `tuned = "tuned/<profile>.toml"`.

One table per method and scenario kind, holding the chosen values and where they came from:

    ["RL".class]
    params = { lr = 0.031, epochs = 4, batch_size = 32 }
    study = "quick/RL/class"
    objective = "..."
    best_value = 0.41
    trials = 20
    ...

`bench run` applies `params` to the cells of that kind (over the method's smoke settings and
the profile's own [params.METHOD], the base the study started from; `--set` still
overrides), and records
the provenance in each cell's record, so tables and the leaderboard can say which rows
are tuned and with what budget. `bench tune --write` (re)writes the file.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

from bench.atomic import write_text
from bench.errors import ConfigError

HEADER = ("# Tuned hyperparameters, written by `python -m bench tune --write`; do not edit by hand.\n"
          "# One table per method and scenario kind: the values `bench run` applies, and the study they come from.\n")


def load(path: Path | None) -> dict[str, dict[str, dict[str, Any]]]:
    """{method: {kind: {"params": {...}, provenance...}}}; {} if there is no file."""
    if path is None or not path.is_file():
        return {}
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"tuned settings {path}: {exc}") from None
    for method, kinds in raw.items():
        if not isinstance(kinds, dict) or not all(isinstance(v, dict) and isinstance(v.get("params"), dict)
                                                  for v in kinds.values()):
            raise ConfigError(f"tuned settings {path}: [{method}.<kind>] tables need a params = {{...}} entry")
    return raw


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"cannot store {v} in TOML")
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot store {type(v).__name__} in TOML")


def dumps(entries: dict[str, dict[str, dict[str, Any]]]) -> str:
    out = [HEADER]
    for method in sorted(entries):
        for kind in sorted(entries[method]):
            entry = entries[method][kind]
            out.append(f"\n[{json.dumps(method)}.{kind}]\n")
            out.append(f"params = {_value(entry['params'])}\n")
            for key, value in entry.items():
                if key != "params":
                    out.append(f"{key} = {_value(value)}\n")
    return "".join(out)


def write(path: Path, entries: dict[str, dict[str, dict[str, Any]]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, dumps(entries))


def provenance(entry: dict[str, Any]) -> dict[str, Any]:
    """What a record keeps about tuned values: everything but the values themselves (those are its params)."""
    return {k: v for k, v in entry.items() if k != "params"}
