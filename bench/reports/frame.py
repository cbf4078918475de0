"""Records -> a flat frame, one row per finished cell, with each metric's |gap to Retrain|.

The gap is taken from the record's own `retrain_reference` (Retrain's metrics on the
same split and seed), so it is exact per seed and does not need the Retrain row; those
reference metrics are kept (`ref_<metric>`) for the gap of the means over seeds. The
metrics are the record's task's `gap_metrics` (RA, UA, TA, MIA for classifiers; records
older than tasks are classifier records); other tasks' metrics become extra columns.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from bench.errors import ConfigError
from bench.names import GAP_METRICS, REFERENCE_METHODS

GROUP = ["dataset", "model", "scenario"]
KEY = GROUP + ["method"]
ENV_FIELDS = ("device_type", "device_name", "cpu_model", "cpu_capability", "cpu_threads", "torch")  # what makes timings comparable
FRAME_COLUMNS = (
    ["cell_id", "profile"] + KEY + ["seed"] + list(GAP_METRICS) + ["avg_gap", "forget_class_TA"]
    + [f"{m}_gap" for m in GAP_METRICS] + [f"ref_{m}" for m in GAP_METRICS]
    + ["forget_class_TA_gap", "pflops", "eval_pflops", "seconds", "device", "machine",
       "created", "commit", "dirty", "config_hash", "code_fingerprint", "nonmember_pool"]
)


def record_metrics(record: dict[str, Any]) -> tuple[str, ...]:
    """The metrics a record's Avg-Gap is over (its task's), RA/UA/TA/MIA for records without a task."""
    return tuple(record.get("gap_metrics") or GAP_METRICS)


def frame_metrics(frame: pd.DataFrame) -> list[str]:
    """Every gap metric of the frame's rows, in first-seen order (the classifier's four for classifier rows)."""
    if frame.empty or "gap_metrics" not in frame:
        return list(GAP_METRICS)
    return list(dict.fromkeys(m for text in frame["gap_metrics"] for m in text.split("|")))


def machine_signature(environment: dict[str, Any]) -> str:
    """A short text that differs when timings are not comparable (device, CPU model, threads, torch).
    Fields a record lacks (older records have no cpu_model) are left out."""
    return ", ".join(f"{k}={environment[k]}" for k in ENV_FIELDS if environment.get(k) is not None)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    cell, metrics, reference = record["cell"], record["metrics"], record["retrain_reference"]
    row: dict[str, Any] = {
        "cell_id": record.get("cell_id", ""), "profile": cell.get("profile", ""), "dataset": cell["dataset"], "model": cell["model"],
        "scenario": cell["scenario"], "method": cell["method"], "seed": int(cell["seed"]),
        "task": record.get("task", "classify"), "gap_metrics": "|".join(record_metrics(record)),
    }
    for m in record_metrics(record):
        row[m] = float(metrics[m])
        row[f"{m}_gap"] = abs(float(metrics[m]) - float(reference[m]))
        row[f"ref_{m}"] = float(reference[m])
    row["avg_gap"] = float(metrics["avg_gap"])
    fta, fta_ref = metrics.get("forget_class_TA"), reference.get("forget_class_TA")
    row["forget_class_TA"] = float(fta) if fta is not None else float("nan")
    row["forget_class_TA_gap"] = abs(float(fta) - float(fta_ref)) if fta is not None and fta_ref is not None else float("nan")
    env = record.get("environment", {})
    code = record.get("code", {})
    row.update({
        "pflops": float(record["cost"]["pflops"]), "eval_pflops": float(record["cost"].get("evaluation_pflops", 0.0)),
        "seconds": float(record["timing"]["unlearn_seconds"]),
        "device": record["timing"].get("device", ""), "machine": machine_signature(env),
        "created": record.get("created", ""), "commit": code.get("commit", "unknown"),
        "dirty": code.get("dirty"), "config_hash": record.get("config_hash", ""),
        "code_fingerprint": code.get("fingerprint", ""), "nonmember_pool": _pool_text(record),
    })
    return row


def _pool_text(record: dict[str, Any]) -> str:
    """'' when evaluation used the whole test set, else 'test-half <size>, hash <h>' (the held-out pool)."""
    pool = (record.get("evaluation") or {}).get("nonmember_pool")
    if not pool:
        return ""
    kind = record.get("config", {}).get("eval", {}).get("nonmember_pool", "pool")
    return f"{kind}: {pool['size']} test images held out (index hash {pool['index_hash']})"


def records_frame(records: Iterable[dict[str, Any]]) -> pd.DataFrame:
    """One row per record with status "ok" (failed records are left out; see `failed_records`)."""
    rows = []
    for record in records:
        if record.get("status") != "ok" or record.get("cell", {}).get("replica"):
            continue  # audit replicas (replica > 0) are read by `bench audit`, not counted as seeds here
        try:
            rows.append(_row(record))
        except (KeyError, TypeError, ValueError) as exc:
            name = record.get("cell_id", "<a record without cell_id>")
            raise ConfigError(f"record {name} is malformed (missing or bad field {exc}); "
                              "delete it and run the cell again") from None
    extra = list(dict.fromkeys(k for r in rows for k in r if k not in FRAME_COLUMNS))
    return pd.DataFrame(rows, columns=FRAME_COLUMNS + extra)


def failed_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") != "ok"]


def load_records(results_dir: Path) -> list[dict[str, Any]]:
    """Every readable record of a results folder; a missing folder is a usage error."""
    from bench.records import RecordStore

    results_dir = Path(results_dir)
    if not (results_dir / "records").is_dir():
        raise ConfigError(f"{results_dir} has no records/ folder; run `python -m bench run --results {results_dir}` "
                          "first, or pass the folder that holds records/")
    return list(RecordStore(results_dir).all())


def method_order(methods: Iterable[str]) -> list[str]:
    """Reference rows (Retrain, Original) first, then registry order, then any unknown names sorted."""
    from bench.method_index import method_index

    names = list(dict.fromkeys(methods))
    known = [n for n in method_index() if n in names]
    ordered = known + sorted(n for n in names if n not in known)
    return [n for n in REFERENCE_METHODS if n in ordered] + [n for n in ordered if n not in REFERENCE_METHODS]


def scenario_order(scenarios: Iterable[str]) -> list[str]:
    """random10 before random50 before class-wise, then anything else by name."""
    import re

    def key(name: str) -> tuple:
        m = re.fullmatch(r"random(\d+)", name)
        if m:
            return (0, int(m.group(1)), name)
        return (1 if name.startswith("class") else 2, 0, name)

    return sorted(dict.fromkeys(scenarios), key=key)


def sort_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows in reading order: dataset, model, scenario (random first), method (references first), seed."""
    if frame.empty:
        return frame
    s_rank = {s: i for i, s in enumerate(scenario_order(frame["scenario"]))}
    m_rank = {m: i for i, m in enumerate(method_order(frame["method"]))}
    ranked = frame.assign(_s=frame["scenario"].map(s_rank), _m=frame["method"].map(m_rank))
    sort_by = ["dataset", "model", "_s", "_m"] + (["seed"] if "seed" in frame else [])
    return ranked.sort_values(sort_by).drop(columns=["_s", "_m"]).reset_index(drop=True)
