"""Tables generated from records only (never edited by hand).

`records_frame` flattens ok records into one row per cell; `summary_table`
aggregates over seeds (mean and sample std) per (dataset, model, scenario,
method); `render_markdown` prints it in the Avg-Gap layout: rows = methods,
columns RA / UA / TA / MIA / Avg-Gap / PFLOPs / seconds as mean +- std.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import pandas as pd

from bench import atomic
from bench.grid import REFERENCE_FIRST

GROUP = ["dataset", "model", "scenario"]
COLUMNS = {  # column in the frame -> heading in tables
    "RA": "RA",
    "UA": "UA",
    "TA": "TA",
    "MIA": "MIA",
    "avg_gap": "Avg-Gap",
    "pflops": "PFLOPs",
    "seconds": "seconds",
}


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        if r.get("status") != "ok":
            continue
        c, m = r["cell"], r["metrics"]
        rows.append({
            "profile": c.get("profile", ""), "dataset": c["dataset"], "model": c["model"], "scenario": c["scenario"],
            "method": c["method"], "seed": c["seed"],
            "RA": m["RA"], "UA": m["UA"], "TA": m["TA"], "MIA": m["MIA"], "avg_gap": m["avg_gap"],
            "forget_class_TA": m.get("forget_class_TA"),
            "pflops": r["cost"]["pflops"], "seconds": r["timing"]["unlearn_seconds"], "device": r["timing"]["device"],
        })
    return pd.DataFrame(rows)


def method_order(methods: Iterable[str]) -> list[str]:
    """Reference rows (Retrain, Original) first, then registry order."""
    from bench.method import METHODS

    names = list(dict.fromkeys(methods))
    registered = [n for n in METHODS if n in names]
    rest = sorted(n for n in names if n not in registered)
    ordered = registered + rest
    return [n for n in REFERENCE_FIRST if n in ordered] + [n for n in ordered if n not in REFERENCE_FIRST]


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof=1; 0 for one seed) and seed count per (dataset, model, scenario, method)."""
    if frame.empty:
        return pd.DataFrame()
    agg = frame.groupby(GROUP + ["method"], sort=False)[list(COLUMNS)].agg(["mean", "std", "count"])
    out = pd.DataFrame(index=agg.index)
    for col in COLUMNS:
        out[f"{col}_mean"] = agg[(col, "mean")]
        out[f"{col}_std"] = agg[(col, "std")].fillna(0.0)
    out["seeds"] = agg[("RA", "count")].astype(int)
    out = out.reset_index()
    order = {m: i for i, m in enumerate(method_order(out["method"]))}
    return out.sort_values(GROUP + ["method"], key=lambda s: s.map(order) if s.name == "method" else s).reset_index(drop=True)


def _fmt(mean: float, std: float, digits: int | None) -> str:
    """Fixed decimals, or (digits None) three significant figures for quantities spanning decades."""
    if digits is None:
        return f"{mean:.3g} ± {std:.2g}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def render_markdown(summary: pd.DataFrame) -> str:
    if summary.empty:
        return "_no finished cells_\n"
    parts = []
    for (dataset, model, scenario), block in summary.groupby(GROUP, sort=False):
        seeds = sorted(set(block["seeds"]))
        parts.append(f"### {dataset} / {model} / {scenario}  (seeds per row: {', '.join(map(str, seeds))})\n")
        head = ["method"] + list(COLUMNS.values())
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "|".join(["---"] + ["---:"] * len(COLUMNS)) + "|")
        for _, row in block.iterrows():
            cells = [row["method"]]
            for col in COLUMNS:
                digits = None if col == "pflops" else (1 if col == "seconds" else 2)
                cells.append(_fmt(row[f"{col}_mean"], row[f"{col}_std"], digits))
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts) + "\n"


def write_summary(records: Iterable[dict], results_dir: Path) -> tuple[str, Path, Path]:
    """Write summary.csv and summary.md under `results_dir`; return the Markdown and both paths."""
    summary = summary_table(records_frame(records))
    markdown = render_markdown(summary)
    csv_path, md_path = Path(results_dir) / "summary.csv", Path(results_dir) / "summary.md"
    atomic.write_text(csv_path, summary.to_csv(index=False, float_format="%.6g"))
    atomic.write_text(md_path, markdown)
    return markdown, csv_path, md_path
