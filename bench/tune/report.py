"""The tuning report: per study the best value, the spread over trials, the time spent, and a
plot of the objective against the method's main hyperparameter (seaborn; deterministic files)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.atomic import write_text


def summarize(study, main_param: str | None) -> dict[str, Any]:
    import optuna

    states = optuna.trial.TrialState
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == states.COMPLETE]
    pruned = [t for t in trials if t.state == states.PRUNED]
    values = [t.value for t in complete]
    seconds = sum(t.user_attrs.get("seconds", 0.0) for t in complete + pruned)
    best = min(complete, key=lambda t: t.value) if complete else None
    return {
        "study": study.study_name, "complete": len(complete), "pruned": len(pruned),
        "best": best.value if best else None, "median": statistics.median(values) if values else None,
        "worst": max(values) if values else None, "std": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "seconds": seconds, "best_params": dict(best.params) if best else {}, "main": main_param,
        "points": [(t.params.get(main_param), t.value if t.state == states.COMPLETE else
                    (t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None),
                    t.state == states.COMPLETE) for t in complete + pruned if main_param in t.params],
    }


def _fmt(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [header, "",
             "| study | trials (complete + pruned) | best Avg-Gap | median | worst | std | seconds | best values |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        best = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(r["best_params"].items()))
        lines.append(f"| {r['study']} | {r['complete']} + {r['pruned']} | {_fmt(r['best'])} | {_fmt(r['median'])} | "
                     f"{_fmt(r['worst'])} | {_fmt(r['std'])} | {r['seconds']:.0f} | {best} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], out_dir: Path, stem: str) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    rows = [r for r in rows if any(p[1] is not None for p in r["points"])]  # every trial pruned before a value: nothing to draw
    if not rows:
        return []
    plt.rcParams["svg.hashsalt"] = "unlearn-bench"  # deterministic SVG ids
    cols = min(4, len(rows))
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(3.2 * cols, 2.6 * nrows), squeeze=False)
    for ax, r in zip(axes.flat, rows):
        xs = [p[0] for p in r["points"] if p[1] is not None]
        ys = [p[1] for p in r["points"] if p[1] is not None]
        kind = ["complete" if p[2] else "pruned (last running mean)" for p in r["points"] if p[1] is not None]
        sns.scatterplot(x=xs, y=ys, hue=kind, style=kind, ax=ax, legend=ax is axes.flat[0],
                        hue_order=["complete", "pruned (last running mean)"],
                        style_order=["complete", "pruned (last running mean)"])
        if all(isinstance(x, (int, float)) and x > 0 for x in xs) and max(xs) / min(xs) > 20:
            ax.set_xscale("log")
        ax.set_title(r["study"].split("/", 1)[-1], fontsize=9)
        ax.set_xlabel(r["main"])
        ax.set_ylabel("Avg-Gap (validation)")
    for ax in list(axes.flat)[len(rows):]:
        ax.set_visible(False)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
        path, tmp = out_dir / f"{stem}.{ext}", out_dir / f".{stem}.tmp.{ext}"
        fig.savefig(tmp, dpi=120, format=ext, metadata=meta)
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def write_report(rows: list[dict[str, Any]], out_dir: Path, header: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = plot(rows, out_dir, "objective_vs_main_hparam")
    text = markdown(rows, header)
    if figures:
        text += f"\n![objective against each method's main hyperparameter]({figures[0].name})\n"
    path = out_dir / "tune_report.md"
    write_text(path, text)
    return [path, *figures]
