"""Avg-Gap tables in the CoUn layout, one per (dataset, model, scenario).

Rows are methods (Retrain and Original first); columns RA / UA / TA / MIA (another task:
its own gap metrics, e.g. the ssl task's probe_acc / knn_acc / encodermi_acc / svc_mia) as
mean ± std over seeds with the mean |gap to Retrain| in parentheses beside each,
then Avg-Gap, PFLOPs and seconds. The lowest mean Avg-Gap among the unlearning
methods (the reference rows excluded) is marked in bold. With one seed there is
no spread and none is printed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from bench import atomic
from bench.metrics import GAP_METRICS
from bench.reports.frame import GROUP, KEY, REFERENCE_METHODS, frame_metrics, records_frame, sort_frame
from bench.reports.render import latex_escape, markdown_table
from bench.reports.stats import mean_std

QUANTITIES = (list(GAP_METRICS) + [f"{m}_gap" for m in GAP_METRICS]
              + ["avg_gap", "forget_class_TA", "forget_class_TA_gap", "pflops", "seconds"])
NOTE = ("Generated from result records by `python -m bench table` (and `bench run`); do not edit. "
        "Mean ± std over seeds (no ± with one seed); (|gap to Retrain|) beside each metric; "
        "**bold** = lowest Avg-Gap among unlearning methods (Retrain and Original are references).")


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (dataset, model, scenario, method): `<q>_mean`, `<q>_std` for every quantity,
    the seeds, the devices, and `best` (lowest Avg-Gap of its block, references excluded)."""
    if frame.empty:
        return pd.DataFrame()
    other_tasks = [m for m in frame_metrics(frame) if m not in GAP_METRICS]  # another task's metrics
    quantities = list(QUANTITIES) + [q for m in other_tasks for q in (m, f"{m}_gap")]
    rows = []
    for key, part in sort_frame(frame).groupby(KEY, sort=False):
        row = dict(zip(KEY, key))
        for q in quantities:
            row[f"{q}_mean"], row[f"{q}_std"] = mean_std(part[q].dropna())
        if other_tasks:
            row["gap_metrics"] = part["gap_metrics"].iloc[0]
        row["seeds"] = len(part)
        row["seed_list"] = ",".join(str(s) for s in sorted(part["seed"]))
        row["devices"] = "; ".join(sorted(set(part["device"])))
        rows.append(row)
    out = pd.DataFrame(rows)
    out["best"] = False
    for _, block in out.groupby(GROUP, sort=False):
        candidates = block[~block["method"].isin(REFERENCE_METHODS)]
        if not candidates.empty:
            lowest = candidates["avg_gap_mean"].min()
            out.loc[candidates.index[candidates["avg_gap_mean"] == lowest], "best"] = True
    return out


# ---------------------------------------------------------------------- formatting


def fmt(mean: float, std: float, digits: int = 2) -> str:
    if math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f}" if math.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def fmt_pflops(value: float) -> str:
    """PFLOPs span decades (digits ~1e-4, CIFAR ~30): fixed decimals where readable, else 3 significant."""
    if math.isnan(value):
        return "–"
    if value == 0:
        return "0"
    return f"{value:.2f}" if 1 <= abs(value) < 1e4 else f"{value:.3g}" if 0.01 <= abs(value) < 1 else f"{value:.2e}"


def _pflops_cell(row: pd.Series) -> str:
    std = row["pflops_std"]
    text = fmt_pflops(row["pflops_mean"])
    return text if math.isnan(std) or std == 0 else f"{text} ± {fmt_pflops(std)}"


def _metric_cell(row: pd.Series, metric: str) -> str:
    value = fmt(row[f"{metric}_mean"], row[f"{metric}_std"])
    gap = row[f"{metric}_gap_mean"]
    return value if math.isnan(gap) else f"{value} ({gap:.2f})"


def block_metrics(block: pd.DataFrame) -> list[str]:
    """The metric columns of a block: its task's gap metrics (RA, UA, TA, MIA for classifiers)."""
    if "gap_metrics" in block and isinstance(block["gap_metrics"].iloc[0], str):
        return block["gap_metrics"].iloc[0].split("|")
    return list(GAP_METRICS)


def table_columns(block: pd.DataFrame) -> list[str]:
    """Headings; the forgotten class's own test accuracy only for class-wise blocks."""
    extra = ["Forget-class TA"] if block["forget_class_TA_mean"].notna().any() else []
    return ["Method", *block_metrics(block)] + extra + ["Avg-Gap", "PFLOPs", "Seconds"]


def table_cells(block: pd.DataFrame) -> tuple[list[str], list[list[str]], list[bool]]:
    """(headings, rows of text, whether each row is the best) for one block."""
    headings = table_columns(block)
    rows, best = [], []
    for _, row in block.iterrows():
        cells = [row["method"]] + [_metric_cell(row, m) for m in block_metrics(block)]
        if "Forget-class TA" in headings:
            cells.append(_metric_cell(row, "forget_class_TA"))
        cells += [fmt(row["avg_gap_mean"], row["avg_gap_std"]), _pflops_cell(row),
                  fmt(row["seconds_mean"], row["seconds_std"], 1)]
        rows.append(cells)
        best.append(bool(row["best"]))
    return headings, rows, best


def block_title(key: tuple, block: pd.DataFrame) -> str:
    seeds = sorted({s for lst in block["seed_list"] for s in lst.split(",")}, key=int)
    devices = sorted({d for ds in block["devices"] for d in ds.split("; ")})
    return f"{' / '.join(key)}  (seeds {', '.join(seeds)}; {', '.join(devices)})"


def render_markdown(summary: pd.DataFrame, heading: str = "###", note: bool = True) -> str:
    if summary.empty:
        return "_no finished cells_\n"
    parts = [NOTE + "\n"] if note else []
    for key, block in summary.groupby(GROUP, sort=False):
        headings, rows, best = table_cells(block)
        gap_col = headings.index("Avg-Gap")
        for cells, is_best in zip(rows, best):
            if is_best:
                cells[gap_col] = f"**{cells[gap_col]}**"
        parts.append(f"{heading} {block_title(key, block)}\n")
        parts.append(markdown_table(headings, rows))
    return "\n".join(parts)


def render_latex(summary: pd.DataFrame) -> str:
    """One booktabs table per block (needs \\usepackage{booktabs})."""
    if summary.empty:
        return "% no finished cells\n"
    parts = ["% Generated from result records by `python -m bench table`; do not edit. Needs \\usepackage{booktabs}.\n"]
    for key, block in summary.groupby(GROUP, sort=False):
        headings, rows, best = table_cells(block)
        gap_col = headings.index("Avg-Gap")
        body = []
        for i, (cells, is_best) in enumerate(zip(rows, best)):
            cells = [latex_escape(c).replace("±", r"$\pm$") for c in cells]
            if is_best:
                cells[gap_col] = rf"\textbf{{{cells[gap_col]}}}"
            body.append(" & ".join(cells) + r" \\")
            is_last_reference = block.iloc[i]["method"] in REFERENCE_METHODS and (
                i + 1 < len(block) and block.iloc[i + 1]["method"] not in REFERENCE_METHODS)
            if is_last_reference:
                body.append(r"\midrule")
        caption = latex_escape(block_title(key, block)) + (
            r". Mean $\pm$ std over seeds; $|$gap to Retrain$|$ in parentheses; best Avg-Gap in bold.")
        parts.append("\n".join([
            r"\begin{table}[t]", r"\centering", r"\small",
            rf"\caption{{{caption}}}",
            r"\begin{tabular}{l" + "r" * (len(headings) - 1) + "}", r"\toprule",
            " & ".join(latex_escape(h) for h in headings) + r" \\", r"\midrule",
            *body, r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
        ]))
    return "\n".join(parts)


def render_csv(summary: pd.DataFrame) -> str:
    return summary.to_csv(index=False, float_format="%.6g")


def write_summary(records: Iterable[dict], results_dir: Path) -> tuple[str, Path, Path]:
    """Write summary.md, summary.csv and summary.tex under `results_dir`; return the Markdown
    and the CSV and Markdown paths (the .tex sits beside them)."""
    summary = summary_table(records_frame(records))
    markdown = render_markdown(summary)
    results_dir = Path(results_dir)
    csv_path, md_path, tex_path = (results_dir / f"summary.{ext}" for ext in ("csv", "md", "tex"))
    atomic.write_text(csv_path, render_csv(summary))
    atomic.write_text(md_path, markdown)
    atomic.write_text(tex_path, render_latex(summary))
    return markdown, csv_path, md_path
