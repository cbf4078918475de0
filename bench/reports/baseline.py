"""The stored baseline: per (dataset, model, scenario, method), the per-seed values of every
checked quantity, with the machine they were measured on. Written only by the explicit
`python -m bench baseline` command; read by `python -m bench compare`.

The same structure is built on the fly from a results folder, so either side of a
comparison may be a folder of records or a baseline file.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np

from bench import atomic
from bench.errors import ConfigError
from bench.reports.frame import KEY, failed_records, load_records, machine_signature, records_frame, sort_frame
from bench.reports.tolerances import RULES

KIND = "unlearn-bench baseline"
SCHEMA = 1
STORED = list(RULES) + ["UA", "MIA"]  # the raw UA/MIA ride along for the reader; only RULES are checked
TASK_AGNOSTIC = ("avg_gap", "pflops", "seconds")  # every task's entries have these; RA, TA, ... only classifiers
FIX = "regenerate it with `python -m bench baseline --results DIR`"


def summarise(records: list[dict[str, Any]], source: str) -> dict[str, Any]:
    """Records -> the baseline structure (failed cells listed under "failed", not as entries)."""
    frame = sort_frame(records_frame(records))
    envs = {r["cell_id"]: r.get("environment", {}) for r in records if r.get("status") == "ok" and "cell_id" in r}
    entries = []
    for key, part in (frame.groupby(KEY, sort=False) if not frame.empty else []):
        part = part.sort_values("seed")
        env = next((envs[c] for c in part["cell_id"] if c in envs), {})
        entries.append({
            **dict(zip(KEY, key)),
            "profile": sorted(set(part["profile"]))[0],
            "seeds": [int(s) for s in part["seed"]],
            "machine": sorted(set(part["machine"])),
            "environment": env,
            "config_hashes": list(part["config_hash"]),  # one per seed, in seed order
            "commits": sorted(set(part["commit"])),
            "values": {q: [float(v) for v in part[q]] for q in STORED if q in part and part[q].notna().all()},
        })
    failed = [{"cell_id": r.get("cell_id", "?"), **{k: r.get("cell", {}).get(k) for k in KEY + ["seed"]},
               "error": r.get("error", "failed")} for r in failed_records(records)]
    return {"kind": KIND, "schema": SCHEMA, "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "source": source, "entries": entries, "failed": failed}


def from_results(results_dir: Path) -> dict[str, Any]:
    return summarise(load_records(Path(results_dir)), str(results_dir))


def add_spread(baseline: dict[str, Any], extra: dict[str, Any], source: str) -> list[str]:
    """Store each entry's measured seed spread: the sample std of every checked quantity over
    the baseline's own seeds plus `extra`'s (the same profile run with other seeds). Compare's
    `sd` tolerances then scale with it even when the baseline itself has one seed. Returns the
    entries `extra` has no other seed for (left without a spread)."""
    others = {entry_key(e): e for e in extra["entries"]}
    lacking = []
    for entry in baseline["entries"]:
        other = others.get(entry_key(entry))
        new_seeds = [s for s in (other["seeds"] if other else []) if s not in entry["seeds"]]
        if not new_seeds:
            lacking.append("/".join(entry_key(entry)))
            continue
        spread = {}
        for q in RULES:
            if q in entry["values"] and q in other["values"]:
                pooled = entry["values"][q] + [v for s, v in zip(other["seeds"], other["values"][q]) if s in new_seeds]
                spread[q] = float(np.std(pooled, ddof=1))
        entry["spread"] = {"seeds": sorted(entry["seeds"] + new_seeds), "source": source, "std": spread}
    return lacking


def write(baseline: dict[str, Any], path: Path) -> None:
    atomic.write_json(Path(path), baseline)


def read(path: Path) -> dict[str, Any]:
    """A stored baseline, checked; anything malformed is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"baseline {path} does not exist; create one with `python -m bench baseline --results DIR`")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"baseline {path} is unreadable ({exc}); {FIX}") from None
    if not isinstance(data, dict) or data.get("kind") != KIND:
        raise ConfigError(f"{path} is not a baseline file (no \"kind\": \"{KIND}\"); {FIX}")
    if data.get("schema") != SCHEMA:
        raise ConfigError(f"baseline {path} has schema {data.get('schema')!r}, this code reads {SCHEMA}; {FIX}")
    entries = data.get("entries")
    if not isinstance(entries, list):
        raise ConfigError(f"baseline {path} has no entries list; {FIX}")
    for i, e in enumerate(entries):
        _check_entry(e, f"baseline {path}, entry {i}")
    data.setdefault("failed", [])
    return data


def _check_entry(entry: Any, where: str) -> None:
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in KEY):
        raise ConfigError(f"{where}: needs text fields {', '.join(KEY)}; {FIX}")
    seeds, values = entry.get("seeds"), entry.get("values")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of integers; {FIX}")
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: values must be a table of per-seed lists; {FIX}")
    spread = entry.get("spread")
    if spread is not None:
        std = spread.get("std") if isinstance(spread, dict) else None
        if not isinstance(std, dict) or not all(isinstance(v, (int, float)) and v >= 0 for v in std.values()):
            raise ConfigError(f"{where}: spread.std must be a table of numbers >= 0; {FIX}")
    for q in RULES:
        v = values.get(q)
        if v is None and q not in TASK_AGNOSTIC:  # a quantity of another task's metric set
            continue
        if not isinstance(v, list) or len(v) != len(seeds) or not all(isinstance(x, (int, float)) for x in v):
            raise ConfigError(f"{where}: values.{q} must hold one number per seed; {FIX}")


def load_side(path: Path) -> dict[str, Any]:
    """A comparison side: a results folder (summarised now) or a baseline file."""
    path = Path(path)
    if path.is_dir():
        return from_results(path)
    return read(path)


def entry_key(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(entry[k] for k in KEY)


def machine_of(entry: dict[str, Any]) -> str:
    machines = entry.get("machine") or [machine_signature(entry.get("environment", {}))]
    return " | ".join(machines)
