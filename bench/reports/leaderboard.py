"""The leaderboard: one page per results folder (one profile), written as
`leaderboard.md` and a self-contained `leaderboard.html`, from records only.

Methods are ranked by mean Avg-Gap per (dataset, model, scenario), with a 95%
percentile-bootstrap interval over seeds (none with one seed), and with the cost
(PFLOPs, seconds, share of Retrain's compute) beside the quality. An overall
ranking averages each seed's Avg-Gap over the scenarios, for methods that ran
every scenario. The page states where and when the records were produced.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from bench import atomic
from bench.errors import ConfigError
from bench.reports import page as pg
from bench.reports.frame import GROUP, REFERENCE_METHODS, failed_records, frame_metrics, load_records, method_order, records_frame, scenario_order, sort_frame
from bench.reports.stats import bootstrap_interval
from bench.metrics import GAP_METRICS, gap_of_means
from bench.reports.tables import attach_audit, block_notes, fmt_pflops, summary_table, table_cells

RANK_HEADERS = ["Rank", "Method", "Avg-Gap (per seed)", "95% CI", "Avg-Gap (of means)", "Seeds", "PFLOPs",
                "% of Retrain's PFLOPs", "Seconds"]


def _gap_of_means(part: pd.DataFrame) -> float:
    """CoUn's form over the seeds of `part` (one method, one block): metrics averaged first."""
    metrics = part["gap_metrics"].iloc[0].split("|") if "gap_metrics" in part else list(GAP_METRICS)
    refs = part[[f"ref_{m}" for m in metrics]].rename(columns=lambda c: c[4:])
    return gap_of_means(part[metrics].to_dict("records"), refs.to_dict("records"), metrics)


def result_folders(root: Path) -> list[Path]:
    """`root` itself if it holds records/, else each sub-folder that does (one per profile)."""
    root = Path(root)
    if (root / "records").is_dir():
        return [root]
    if not root.is_dir():
        raise ConfigError(f"{root} does not exist; pass --results with a results folder (e.g. results or results/quick)")
    found = sorted(p for p in root.iterdir() if (p / "records").is_dir())
    if not found:
        raise ConfigError(f"no results under {root}: no records/ folder in it or its sub-folders; run `python -m bench run` first")
    return found


def _fmt_ci(ci: tuple[float, float] | None) -> str:
    return "– (1 seed)" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _ranked(rows: list[dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["rank"] = table["avg_gap"].round(6).rank(method="min").astype(int)
    return table.sort_values(["rank", "method"]).reset_index(drop=True)


def block_ranking(block: pd.DataFrame) -> pd.DataFrame:
    """One row per method of one (dataset, model, scenario) block, Retrain left out (it is the target)."""
    retrain = block.loc[block["method"] == "Retrain", "pflops"]
    retrain_cost = retrain.mean() if not retrain.empty else math.nan
    rows = []
    for method in method_order(block["method"]):
        if method == "Retrain":
            continue
        part = block[block["method"] == method]
        gaps = part["avg_gap"].to_numpy()
        cost = part["pflops"].mean()
        rows.append({"method": method, "avg_gap": gaps.mean(), "ci": bootstrap_interval(gaps), "seeds": len(gaps),
                     "of_means": _gap_of_means(part),
                     "pflops": cost, "share": 100 * cost / retrain_cost if retrain_cost > 0 else math.nan,
                     "seconds": part["seconds"].mean()})
    return _ranked(rows)


def overall_ranking(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per seed, the mean Avg-Gap over every scenario of the folder; then mean and interval over seeds.
    Only methods (and seeds) with every scenario count; the rest are named in the notes."""
    scenarios = scenario_order(frame["scenario"])
    retrain_cost = frame[frame["method"] == "Retrain"].groupby("seed")["pflops"].sum().mean()
    rows, notes = [], []
    for method in method_order(frame["method"]):
        if method == "Retrain":
            continue
        part = frame[frame["method"] == method]
        per_seed = part.pivot_table(index="seed", columns="scenario", values="avg_gap", aggfunc="mean")
        missing = [s for s in scenarios if s not in per_seed.columns]
        if missing:
            notes.append(f"{method} is not in the overall ranking: no records for {', '.join(missing)}")
            continue
        complete = per_seed[scenarios].dropna()
        if complete.empty:
            notes.append(f"{method} is not in the overall ranking: no seed has all of {', '.join(scenarios)}")
            continue
        gaps = complete.mean(axis=1).to_numpy()
        costs = part[part["seed"].isin(complete.index)].groupby("seed")["pflops"].sum()
        kept = part[part["seed"].isin(complete.index)]
        of_means = sum(_gap_of_means(kept[kept["scenario"] == s]) for s in scenarios) / len(scenarios)
        rows.append({"method": method, "avg_gap": gaps.mean(), "ci": bootstrap_interval(gaps), "seeds": len(gaps),
                     "of_means": of_means,
                     "pflops": costs.mean(), "share": 100 * costs.mean() / retrain_cost if retrain_cost > 0 else math.nan,
                     "seconds": part[part["seed"].isin(complete.index)].groupby("seed")["seconds"].sum().mean()})
    return _ranked(rows), notes


def ranking_rows(table: pd.DataFrame) -> list[list[str]]:
    def name(method: str) -> str:
        return f"{method} (reference: no unlearning)" if method in REFERENCE_METHODS else method

    return [[str(r["rank"]), name(r["method"]), f"{r['avg_gap']:.2f}", _fmt_ci(r["ci"]), f"{r['of_means']:.2f}",
             str(r["seeds"]),
             fmt_pflops(r["pflops"]), "–" if math.isnan(r["share"]) else f"{r['share']:.1f}%", f"{r['seconds']:.1f}"]
            for _, r in table.iterrows()]


def _describe_environment(env: dict[str, Any]) -> str:
    """'NVIDIA H100 (cuda 12.4), torch 2.x' or 'AMD EPYC (cpu, 2 threads), torch 2.x'."""
    if env.get("device_type") == "cuda":
        where = f"{env.get('device_name')} (cuda {env.get('cuda', '?')})"
    else:
        where = f"{env.get('cpu_model') or env.get('device_name')} (cpu, {env.get('cpu_threads')} threads)"
    return f"{where}, torch {env.get('torch')}"


def _provenance(frame: pd.DataFrame, records: list[dict], failed: list[dict]) -> list[str]:
    created = sorted(c for c in frame["created"] if c)
    commits = sorted({f"{c[:10]}{' (uncommitted changes)' if d else ''}" for c, d in zip(frame["commit"], frame["dirty"])})
    envs = sorted({_describe_environment(r.get("environment", {})) for r in records if r.get("status") == "ok"})
    items = [
        f"profile: {', '.join(sorted(set(frame['profile'])))}; dataset / model: "
        + ", ".join(sorted({f'{d} / {m}' for d, m in zip(frame['dataset'], frame['model'])})),
        f"seeds: {', '.join(str(s) for s in sorted(set(frame['seed'])))}",
        f"device (as timed): {', '.join(sorted(set(frame['device'])))}; environment: {'; '.join(envs)}",
        f"records produced: {created[0][:10]} to {created[-1][:10]}" if created else "records produced: unknown dates",
        f"code: {', '.join(commits)}",
    ]
    items.append(_tuned_note(records))
    if failed:
        items.append("failed cells (not in the tables): " + "; ".join(f"`{r.get('cell_id')}`: {r.get('error', '?')}" for r in failed))
    return items


def _tuned_note(records: list[dict]) -> str:
    """Which rows ran with values chosen by `bench tune`, and with what budget."""
    tuned: dict[tuple[str, str], dict] = {}
    for r in records:
        if r.get("status") == "ok" and r.get("tuned"):
            kind = "class" if r["cell"]["scenario"].startswith("class") else "random"
            tuned[r["cell"]["method"], kind] = r["tuned"]
    if not tuned:
        return "tuned rows: none (every method runs with its declared defaults / smoke settings)"
    parts = []
    for (method, kind), t in sorted(tuned.items()):
        over = f", overridden: {', '.join(t['overridden'])}" if t.get("overridden") else ""
        parts.append(f"{method} ({kind}: {t.get('budget', '?')}; best validation Avg-Gap {t.get('best_value', '?')}; "
                     f"{t.get('date', '?')}, {str(t.get('commit', '?'))[:10]}{over})")
    return "tuned rows (values from `bench tune`, see the profile's tuned file): " + "; ".join(parts)


def build_page(results_dir: Path, records: list[dict], figures: list[Path]) -> pg.Page:
    frame = sort_frame(records_frame(records))
    failed = failed_records(records)
    name = ", ".join(sorted(set(frame["profile"]))) if not frame.empty else results_dir.name
    page = pg.Page(f"Leaderboard: {name}")
    page.add(pg.Para(f"Generated from {len(records)} records in `{results_dir.name}/records/` by "
                     "`python -m bench leaderboard`; do not edit by hand. Lower Avg-Gap (mean |metric - Retrain's| "
                     f"over {', '.join(frame_metrics(frame))}) is better. Ranked by Avg-Gap per seed (each cell against the Retrain of "
                     "its own split and seed, then averaged); Avg-Gap of means averages each metric over seeds "
                     "first (CoUn's form, comparable with the papers' tables); intervals are 95% percentile-bootstrap intervals of the mean "
                     "over seeds (none with one seed); overlapping intervals mean the order is not settled."))
    if frame.empty:
        page.add(pg.Para("No finished cells."))
        return page
    page.add(pg.Bullets(_provenance(frame, records, failed)))

    overall, notes = overall_ranking(frame)
    if not overall.empty and frame["scenario"].nunique() > 1:
        page.add(pg.Heading(2, f"Overall: mean Avg-Gap over {', '.join(scenario_order(frame['scenario']))}"),
                 pg.Para("Cost columns are the sum over those scenarios' cells."),
                 pg.Table(RANK_HEADERS, ranking_rows(overall)))
        if notes:
            page.add(pg.Bullets(notes))
    for key, block in frame.groupby(GROUP, sort=False):
        page.add(pg.Heading(2, f"Ranking: {' / '.join(key)}"), pg.Table(RANK_HEADERS, ranking_rows(block_ranking(block))))

    page.add(pg.Heading(2, "Figures"))
    for path in figures:
        page.add(pg.Figure(path, figure_caption(path.stem)))

    page.add(pg.Heading(2, "Avg-Gap tables (CoUn layout)"),
             pg.Para("Mean ± std over seeds, |gap to Retrain| in parentheses; Avg-Gap per seed and of means; "
                     "PFLOPs include stop-rule evaluations (their share in parentheses); bold: lowest of each "
                     "Avg-Gap among unlearning methods (Retrain and Original are references)."))
    summary = attach_audit(summary_table(frame), results_dir)
    for key, block in summary.groupby(GROUP, sort=False):
        headings, rows, bold = table_cells(block)
        page.add(pg.Heading(3, " / ".join(key)), pg.Table(headings, rows, bold))
        notes = block_notes(block)
        if notes:
            page.add(pg.Bullets(notes))
    return page


FIGURE_CAPTIONS = {
    "tradeoff": "Quality against cost: Avg-Gap to Retrain (lower is better) against PFLOPs, per scenario.",
    "metric_gaps": "|Gap to Retrain| per metric and Avg-Gap, per method (Retrain itself left out).",
}


def embedding_figures(figures_dir: Path) -> list[Path]:
    """Pictures made by `python -m bench embed` into this folder's figures/ (if any)."""
    return sorted(figures_dir.glob("embed_*.png"))


def write_leaderboard(results_dir: Path, make_plots: bool = True) -> tuple[Path, Path, list[Path]]:
    """Write leaderboard.md and leaderboard.html (and the figures) into `results_dir`."""
    from bench.reports import plots

    results_dir = Path(results_dir)
    records = load_records(results_dir)
    figures_dir = results_dir / "figures"
    made = plots.all_figures(sort_frame(records_frame(records)), figures_dir) if make_plots else []
    pngs = [p for p in made if p.suffix == ".png"] + embedding_figures(figures_dir)
    page = build_page(results_dir, records, pngs)
    md_path, html_path = results_dir / "leaderboard.md", results_dir / "leaderboard.html"
    atomic.write_text(md_path, pg.to_markdown(page, results_dir))
    atomic.write_text(html_path, pg.to_html(page))
    return md_path, html_path, made


def figure_caption(stem: str) -> str:
    """A caption from a figure's file name ('embed_FT_random10_s0_tsne' -> a readable sentence)."""
    if stem in FIGURE_CAPTIONS:
        return FIGURE_CAPTIONS[stem]
    parts = stem.split("_")
    if parts[0] == "embed" and len(parts) >= 5:
        method, scenario, seed, view = "_".join(parts[1:-3]), parts[-3], parts[-2], parts[-1]
        kind = "t-SNE" if view == "tsne" else "Poincare disk" if view == "poincare" else view
        return f"{kind} of features before (Original) and after {method}, {scenario}, seed {seed.lstrip('s')}; forget samples marked."
    return stem
