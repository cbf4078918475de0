"""The imagetext task's summary table: one row per (model, method), mean (± sd over seeds)
of zero-shot accuracies, the forgotten confusion rows' distance to Retrain, Avg-Gap, PFLOPs
and seconds. Written by `bench run` as summary.md and summary.csv (deterministic order)."""

from __future__ import annotations

import csv
import io
import statistics
from pathlib import Path
from typing import Iterable

from bench import atomic

COLUMNS = (  # (record metric, header)
    ("zs_forget_seen", "Forget (seen)"), ("zs_forget_heldout", "Forget (held-out)"),
    ("zs_retain_seen", "Retain (seen)"), ("zs_retain_heldout", "Retain (held-out)"),
    ("zs_forget_train_seen", "Forget train"), ("forget_row_tv", "Row TV to Retrain"), ("avg_gap", "Avg-Gap"),
)
METHOD_ORDER = ("Retrain", "Original", "FT-IT", "AC-IT", "HAC")


def _rows(records: Iterable[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        if r.get("status") != "ok" or r.get("task") != "imagetext":
            continue
        c = r["cell"]
        concepts = r["config"]["task_params"].get("concepts", 1)
        groups.setdefault((c["scenario"], concepts, c["model"], c["method"]), []).append(r)

    def order(key: tuple) -> tuple:
        scenario, concepts, model, method = key
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
        return scenario, concepts, model, rank, method

    rows = []
    for key in sorted(groups, key=order):
        recs = groups[key]
        row = {"scenario": key[0], "concepts": key[1], "model": key[2], "method": key[3], "seeds": len(recs)}
        for metric, _ in COLUMNS:
            row[metric] = [float(r["metrics"][metric]) for r in recs]
        row["pflops"] = [float(r["cost"]["pflops"]) for r in recs]
        row["seconds"] = [float(r["timing"]["unlearn_seconds"]) for r in recs]
        rows.append(row)
    return rows


def _fmt(values: list[float], digits: int = 2) -> str:
    mean = statistics.fmean(values)
    if len(values) > 1:
        return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"
    return f"{mean:.{digits}f}"


def render_markdown(records: Iterable[dict]) -> str:
    rows = _rows(records)
    if not rows:
        return "no finished imagetext records\n"
    head = ["Model", "Method"] + [h for _, h in COLUMNS] + ["PFLOPs", "Seconds"]
    out, block = [], None
    for row in rows:
        if (row["scenario"], row["concepts"]) != block:
            block = (row["scenario"], row["concepts"])
            out += ["", f"### {row['scenario']}, {row['concepts']} concept(s) forgotten", "",
                    "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        cells = [row["model"], row["method"]] + [_fmt(row[m]) for m, _ in COLUMNS]
        cells += [f"{statistics.fmean(row['pflops']):.3g}", f"{statistics.fmean(row['seconds']):.1f}"]
        out.append("| " + " | ".join(cells) + " |")
    note = ("\nZero-shot accuracy (%) on CIFAR-10 test images of the forgotten / retained classes, with the "
            "training templates (seen) or held-out ones; Forget train: the forgotten training images; Row TV: "
            "total-variation distance (%) of the forgotten classes' confusion rows to Retrain's; Avg-Gap: mean "
            "|metric - Retrain's| over the four test accuracies.\n")
    return "\n".join(out).lstrip("\n") + "\n" + note


def render_csv(records: Iterable[dict]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    metrics = [m for m, _ in COLUMNS] + ["pflops", "seconds"]
    writer.writerow(["scenario", "concepts", "model", "method", "seeds"] + metrics)
    for row in _rows(records):
        writer.writerow([row["scenario"], row["concepts"], row["model"], row["method"], row["seeds"]]
                        + [f"{statistics.fmean(row[m]):.6g}" for m in metrics])
    return buf.getvalue()


def write_summary(records: Iterable[dict], results_dir: Path) -> str:
    records = list(records)
    markdown = render_markdown(records)
    results_dir = Path(results_dir)
    atomic.write_text(results_dir / "summary.md", markdown)
    atomic.write_text(results_dir / "summary.csv", render_csv(records))
    return markdown
