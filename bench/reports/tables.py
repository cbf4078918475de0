"""Avg-Gap tables in the CoUn layout, one per (dataset, model, scenario).

Rows are methods (Retrain and Original first); columns RA / UA / TA / MIA (another task:
its own gap metrics, e.g. the ssl task's probe_acc / knn_acc / encodermi_acc / svc_mia) as
mean ± std over seeds with the mean |gap to Retrain| in parentheses beside each,
then Avg-Gap in two forms, PFLOPs and seconds. Avg-Gap (per seed) is the mean over
seeds of each cell's gap to the Retrain of its own split and seed (what records hold;
it has a noise floor from the seed spread); Avg-Gap (of means) averages each metric
over seeds first and then takes the gap to Retrain's means (CoUn's tables). The lowest
of each among the unlearning methods (the reference rows excluded) is in bold. PFLOPs
include a stop rule's evaluations, whose share is given beside them. With one seed
there is no spread and none is printed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Iterable

import pandas as pd

from bench import atomic
from bench.metrics import gap_of_means
from bench.names import GAP_METRICS
from bench.reports.frame import GROUP, KEY, REFERENCE_METHODS, frame_metrics, records_frame, sort_frame
from bench.reports.render import latex_escape, markdown_table
from bench.reports.stats import mean_std

QUANTITIES = (list(GAP_METRICS) + [f"{m}_gap" for m in GAP_METRICS]
              + ["avg_gap", "forget_class_TA", "forget_class_TA_gap", "pflops", "eval_pflops", "seconds"])
NOTE = ("Generated from result records by `python -m bench table` (and `bench run`); do not edit. "
        "Mean ± std over seeds (no ± with one seed); (|gap to Retrain|) beside each metric; "
        "Avg-Gap per seed: each cell against the Retrain of its own split and seed, then averaged; "
        "Avg-Gap of means: metrics averaged over seeds first, then the gap (CoUn's form); "
        "PFLOPs include stop-rule evaluations (their share in parentheses); "
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
        metrics = part["gap_metrics"].iloc[0].split("|")
        refs = [f"ref_{m}" for m in metrics]
        row["avg_gap_of_means"] = (gap_of_means(part[metrics].to_dict("records"),
                                                part[refs].rename(columns=lambda c: c[4:]).to_dict("records"), metrics)
                                   if all(r in part for r in refs) else math.nan)
        if other_tasks:
            row["gap_metrics"] = part["gap_metrics"].iloc[0]
        row["seeds"] = len(part)
        row["seed_list"] = ",".join(str(s) for s in sorted(part["seed"]))
        row["devices"] = "; ".join(sorted(set(part["device"])))
        row["code_versions"] = part["code_fingerprint"].nunique()
        row["commits"] = "; ".join(sorted({str(c)[:7] for c in part["commit"]}))
        row["nonmember_pool"] = "; ".join(sorted({p for p in part["nonmember_pool"] if p}))
        rows.append(row)
    out = pd.DataFrame(rows)
    for flag, column in (("best", "avg_gap_mean"), ("best_of_means", "avg_gap_of_means")):
        out[flag] = False
        for _, block in out.groupby(GROUP, sort=False):
            candidates = block[~block["method"].isin(REFERENCE_METHODS)]
            if not candidates.empty:
                lowest = candidates[column].min()
                out.loc[candidates.index[candidates[column] == lowest], flag] = True
    return out


AUDIT_COLUMNS = {"F": "F", "final_score": "Final", "ulira_auc": "U-LiRA AUC", "klom_forget_p95": "KLoM P95"}


def attach_audit(summary: pd.DataFrame, results_dir: Path) -> pd.DataFrame:
    """Add the audit's columns (`bench audit`'s audit.csv in `results_dir`, mean over seeds) and
    Retrain's noise floor per block, where audit data exists; unchanged otherwise."""
    from bench.audit.report import read_audit

    audit = read_audit(results_dir)
    if audit is None or summary.empty:
        return summary
    audit = audit.astype({"dataset": str, "model": str, "scenario": str, "method": str})
    per_method = audit.groupby(KEY, sort=False)[list(AUDIT_COLUMNS)].mean().reset_index()
    per_block = audit.groupby(GROUP, sort=False)["retrain_noise_avg_gap"].mean().rename("retrain_noise").reset_index()
    return summary.merge(per_method, on=KEY, how="left").merge(per_block, on=GROUP, how="left")


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
    """Total PFLOPs (± over seeds when they differ), and the stop rule's evaluation share if any."""
    std = row["pflops_std"]
    text = fmt_pflops(row["pflops_mean"])
    text = text if math.isnan(std) or std == 0 else f"{text} ± {fmt_pflops(std)}"
    evaluated, total = row.get("eval_pflops_mean", math.nan), row["pflops_mean"]
    if evaluated > 0 and total > 0:
        text += f" (eval {100 * evaluated / total:.0f}%)"
    return text


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
    audit = list(AUDIT_COLUMNS.values()) if _has_audit(block) else []
    return ["Method", *block_metrics(block)] + extra + [GAP_PER_SEED, GAP_OF_MEANS] + audit + ["PFLOPs", "Seconds"]


def _has_audit(block: pd.DataFrame) -> bool:
    return "F" in block and bool(block["F"].notna().any())


GAP_PER_SEED, GAP_OF_MEANS = "Avg-Gap (per seed)", "Avg-Gap (of means)"


def table_cells(block: pd.DataFrame) -> tuple[list[str], list[list[str]], list[list[bool]]]:
    """(headings, rows of text, per row which cells are bold: the best of each Avg-Gap form) for one block."""
    headings = table_columns(block)
    rows, bold = [], []
    for _, row in block.iterrows():
        cells = [row["method"]] + [_metric_cell(row, m) for m in block_metrics(block)]
        if "Forget-class TA" in headings:
            cells.append(_metric_cell(row, "forget_class_TA"))
        cells += [fmt(row["avg_gap_mean"], row["avg_gap_std"]), fmt(row["avg_gap_of_means"], math.nan)]
        if "F" in headings:
            cells += [fmt(row[c], math.nan, 3) for c in AUDIT_COLUMNS]
        cells += [_pflops_cell(row), fmt(row["seconds_mean"], row["seconds_std"], 1)]
        rows.append(cells)
        marks = {headings.index(GAP_PER_SEED): bool(row["best"]), headings.index(GAP_OF_MEANS): bool(row["best_of_means"])}
        bold.append([marks.get(j, False) for j in range(len(headings))])
    return headings, rows, bold


def block_title(key: tuple, block: pd.DataFrame) -> str:
    seeds = sorted({s for lst in block["seed_list"] for s in lst.split(",")}, key=int)
    devices = sorted({d for ds in block["devices"] for d in ds.split("; ")})
    noise = ""
    if "retrain_noise" in block and block["retrain_noise"].notna().any():
        noise = f"; Retrain replicas' Avg-Gap to Retrain: {block['retrain_noise'].dropna().iloc[0]:.2f}"
    return f"{' / '.join(key)}  (seeds {', '.join(seeds)}; {', '.join(devices)}{noise})"


def block_notes(block: pd.DataFrame) -> list[str]:
    """Footnotes a block needs: a held-out non-member pool (TA and MIA then use the rest of the
    test set), and methods whose seeds ran different code (records of another code version)."""
    notes = []
    pools = sorted({p for ps in block["nonmember_pool"] for p in ps.split("; ") if p})
    if pools:
        notes.append("Non-member pool held out of evaluation (TA, MIA and forget-class TA use the rest of the "
                     "test set; a method may train on the pool, e.g. GP's full form): " + "; ".join(pools) + ".")
    mixed = [m for m, n in zip(block["method"], block["code_versions"]) if n > 1]
    if mixed:
        notes.append("Records made by different code versions are mixed in: " + ", ".join(mixed)
                     + " (rerun them with the current code).")
    by_commit: dict[str, list[str]] = {}
    for method, commits in zip(block["method"], block.get("commits", [])):
        for commit in commits.split("; "):
            by_commit.setdefault(commit, []).append(method)
    if len(by_commit) > 1:  # a grid resumed across commits (e.g. GPU chunks run weeks apart)
        notes.append(f"Records of {len(by_commit)} commits: "
                     + "; ".join(f"{c}: {', '.join(ms)}" for c, ms in sorted(by_commit.items())) + ".")
    return notes


def render_markdown(summary: pd.DataFrame, heading: str = "###", note: bool = True) -> str:
    if summary.empty:
        return "_no finished cells_\n"
    parts = [NOTE + "\n"] if note else []
    for key, block in summary.groupby(GROUP, sort=False):
        headings, rows, bold = table_cells(block)
        rows = [[f"**{c}**" if b else c for c, b in zip(cells, marks)] for cells, marks in zip(rows, bold)]
        parts.append(f"{heading} {block_title(key, block)}\n")
        parts.append(markdown_table(headings, rows))
        parts += [f"_{n}_\n" for n in block_notes(block)]
    return "\n".join(parts)


def render_latex(summary: pd.DataFrame) -> str:
    """One booktabs table per block (needs \\usepackage{booktabs})."""
    if summary.empty:
        return "% no finished cells\n"
    parts = ["% Generated from result records by `python -m bench table`; do not edit. Needs \\usepackage{booktabs}.\n"]
    for key, block in summary.groupby(GROUP, sort=False):
        headings, rows, bold = table_cells(block)
        body = []
        for i, (cells, marks) in enumerate(zip(rows, bold)):
            cells = [latex_escape(c).replace("±", r"$\pm$") for c in cells]
            cells = [rf"\textbf{{{c}}}" if b else c for c, b in zip(cells, marks)]
            body.append(" & ".join(cells) + r" \\")
            is_last_reference = block.iloc[i]["method"] in REFERENCE_METHODS and (
                i + 1 < len(block) and block.iloc[i + 1]["method"] not in REFERENCE_METHODS)
            if is_last_reference:
                body.append(r"\midrule")
        caption = latex_escape(block_title(key, block)) + (
            r". Mean $\pm$ std over seeds; $|$gap to Retrain$|$ in parentheses; Avg-Gap per seed and of the "
            r"means over seeds (CoUn's form); best of each in bold.") + "".join(
            " " + latex_escape(n) for n in block_notes(block))
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
    results_dir = Path(results_dir)
    summary = attach_audit(summary_table(records_frame(records)), results_dir)
    markdown = render_markdown(summary)
    csv_path, md_path, tex_path = (results_dir / f"summary.{ext}" for ext in ("csv", "md", "tex"))
    atomic.write_text(csv_path, render_csv(summary))
    atomic.write_text(md_path, markdown)
    atomic.write_text(tex_path, render_latex(summary))
    return markdown, csv_path, md_path
