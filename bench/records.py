"""Result records: one JSON file per cell, written atomically, read back for resume and tables.

Layout: <results>/records/<cell_id>.json. A cell counts as done when its record
has status "ok", the current schema and the same configuration hash as the
cell about to run; anything else (missing, failed, stale, unreadable) is run.
With `keep_older_code`, a finished record whose configuration differs only in the code
fingerprint also counts as done (a grid resumed across code changes, e.g. GPU chunks weeks
apart); the record keeps its own fingerprint and commit, and the tables flag rows whose
seeds were made by more than one code version.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from bench import atomic

if TYPE_CHECKING:  # bench.cell imports torch; the reports read records without it
    from bench.cell import CellSpec

log = logging.getLogger(__name__)


NONFINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}  # what float() reads back


def jsonable(value: Any) -> Any:
    """`value` as strict JSON can hold it, so every record can be written, whatever its numbers:
    a non-finite float becomes "NaN", "Infinity" or "-Infinity" (`float()` reads each back), a
    number-like object (a tensor or numpy scalar a method noted) its float, anything else its text."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else NONFINITE[repr(value)]
    if value is None or isinstance(value, (str, int)):
        return value
    try:
        return jsonable(float(value))
    except (TypeError, ValueError, RuntimeError):
        return str(value)


class RecordStore:
    def __init__(self, results_dir: Path, keep_older_code: bool = False):
        self.root = Path(results_dir)
        self.records_dir = self.root / "records"
        self.keep_older_code = keep_older_code

    def path(self, cell_id: str) -> Path:
        return self.records_dir / f"{cell_id}.json"

    def read(self, cell_id: str) -> dict[str, Any] | None:
        path = self.path(cell_id)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            log.warning("record %s is unreadable (%s); the cell will run again", path, exc)
            return None

    def is_done(self, spec: CellSpec) -> bool:
        from bench.cell import SCHEMA_VERSION

        record = self.read(spec.cell_id)
        return (
            record is not None
            and record.get("status") == "ok"
            and record.get("schema") == SCHEMA_VERSION
            and (record.get("config_hash") == spec.config_hash
                 or (self.keep_older_code and _without_code(record.get("config")) == _without_code(spec.identity())))
            and ("outputs" not in record or (self.records_dir / record["outputs"]["file"]).is_file())
        )

    def write(self, record: dict[str, Any]) -> Path:
        """Write the record; per-example outputs it carries (`_outputs`) go first into their own
        file, and the record keeps that file's name and hash instead."""
        from bench.outputs import write_outputs  # torch: only where a cell's outputs are written

        arrays = record.pop("_outputs", None)
        if arrays is not None:
            record["outputs"] = write_outputs(self.records_dir, record["cell_id"], arrays)
        path = self.path(record["cell_id"])
        atomic.write_json(path, jsonable(record))
        return path

    def all(self) -> Iterator[dict[str, Any]]:
        """Every readable record, in file-name order."""
        if not self.records_dir.is_dir():
            return
        for path in sorted(self.records_dir.glob("*.json")):
            try:
                yield json.loads(path.read_text())
            except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
                log.warning("skipping unreadable record %s (%s)", path, exc)


def _without_code(identity: Any) -> Any:
    """A cell's identity (as the record stores it, JSON types) without its code fingerprint."""
    if not isinstance(identity, dict):
        return None
    return jsonable({k: v for k, v in identity.items() if k != "code"})
