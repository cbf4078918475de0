"""Figures from records (seaborn; each saved as PNG and SVG).

- `tradeoff`: Avg-Gap against PFLOPs, one panel per (dataset, model, scenario): the
  quality/cost trade-off. Error bars are the 95% bootstrap interval over seeds
  (none with one seed). PFLOPs are on a log axis; a method that costs nothing
  (Original) sits one decade left of the cheapest other point and says so in its label.
- `gap_bars`: |gap to Retrain| per metric and Avg-Gap, bars per method, same intervals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from bench.reports.frame import GROUP, frame_metrics, method_order  # noqa: E402
from bench.reports.stats import bootstrap_interval  # noqa: E402

FORMATS = ("png", "svg")
DPI = 150
# Byte-identical files from identical records: no date or version in the files, and SVG ids
# drawn from a fixed salt instead of random ones (git then shows a change only when one happened).
matplotlib.rcParams["svg.hashsalt"] = "unlearn-bench"
METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


def save(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.svg (via a temporary name, then rename: never half a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in FORMATS:
        path = out_dir / f"{stem}.{ext}"
        tmp = out_dir / f".{stem}.tmp.{ext}"
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=ext, metadata=METADATA[ext])
        tmp.replace(path)
        paths.append(path)
    plt.close(fig)
    return paths


def palette(methods: Sequence[str]) -> dict[str, tuple]:
    """A fixed colour per method (the same in every panel and figure of a page)."""
    colours = sns.color_palette("tab10" if len(methods) <= 10 else "tab20", len(methods))
    return dict(zip(methods, colours))


def _interval_halfwidths(values: np.ndarray) -> tuple[float, float]:
    ci = bootstrap_interval(values)
    if ci is None:
        return 0.0, 0.0
    mean = float(np.mean(values))
    return mean - ci[0], ci[1] - mean


def _ci_errorbar(values: Sequence[float]) -> tuple[float, float]:
    """seaborn `errorbar=` callable: the bootstrap interval, or no bar with one seed."""
    ci = bootstrap_interval(values)
    mean = float(np.mean(values))
    return ci if ci is not None else (mean, mean)


def _blocks(frame: pd.DataFrame) -> list[tuple[tuple, pd.DataFrame]]:
    return list(frame.groupby(GROUP, sort=False))


MARKERS = ("o", "s", "D", "^", "v", "P", "X", "<", ">", "p", "h", "*")


def markers(methods: Sequence[str]) -> dict[str, str]:
    return {m: MARKERS[i % len(MARKERS)] for i, m in enumerate(methods)}


def _place_labels(fig: plt.Figure, ax: plt.Axes, points: list[dict]) -> None:
    """Label each point, moving a label up or down (with a leader line) until it overlaps no other."""
    renderer = fig.canvas.get_renderer()
    placed = []
    for p in sorted(points, key=lambda p: (-p["y"], p["x"])):
        for k in range(60):
            dy = ((k + 1) // 2) * (1 if k % 2 else -1) * 10  # 0, +10, -10, +20, ... points
            text = ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points", xytext=(9, 3 + dy),
                               fontsize=9, va="center")
            box = text.get_window_extent(renderer).expanded(1.02, 1.15)
            if not any(box.overlaps(b) for b in placed) or k == 59:
                break
            text.remove()
        placed.append(box)
        if dy:
            text.remove()
            ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points", xytext=(9, 3 + dy), fontsize=9,
                        va="center", arrowprops={"arrowstyle": "-", "color": "grey", "lw": 0.6, "shrinkA": 0, "shrinkB": 4})


def tradeoff(frame: pd.DataFrame, out_dir: Path, stem: str = "tradeoff") -> list[Path]:
    """Avg-Gap (y) against PFLOPs (x, log) per method, one panel per block."""
    blocks = _blocks(frame)
    methods = method_order(frame["method"])
    colours, shapes = palette(methods), markers(methods)
    sns.set_theme(style="whitegrid", context="notebook")
    height = 4.6 + 0.12 * max(0, len(methods) - 6)
    fig, axes = plt.subplots(1, len(blocks), figsize=(5.6 * len(blocks) + 1.8, height), squeeze=False)
    panels = []
    for ax, (key, block) in zip(axes[0], blocks):
        positive = block.loc[block["pflops"] > 0, "pflops"]
        zero_at = positive.min() / 10 if not positive.empty else 1.0
        points = []
        for method in method_order(block["method"]):
            part = block[block["method"] == method]
            cost = part["pflops"].mean()
            points.append({"method": method, "x": cost if cost > 0 else zero_at, "y": part["avg_gap"].mean(),
                           "err": _interval_halfwidths(part["avg_gap"].to_numpy()),
                           "label": method if cost > 0 else f"{method} (0 PFLOPs)"})
        for p in points:
            if p["err"] != (0.0, 0.0):
                ax.errorbar(p["x"], p["y"], yerr=[[p["err"][0]], [p["err"][1]]], color=colours[p["method"]],
                            capsize=4, lw=1.3, zorder=2)
            ax.scatter(p["x"], p["y"], s=80, color=colours[p["method"]], marker=shapes[p["method"]],
                       edgecolor="black", linewidth=0.6, zorder=3, label=p["method"])
        if (block["pflops"] == 0).any() and not positive.empty:  # mark the break between "0" and the log axis
            ax.axvline(np.sqrt(zero_at * positive.min()), color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        xs, ys = [p["x"] for p in points], [p["y"] for p in points]
        ax.set_xlim(min(xs) / 3, max(xs) * 10)  # room for the labels on the right
        top = max(y + p["err"][1] for y, p in zip(ys, points))
        ax.set_ylim(min(0.0, min(ys)) - 0.04 * (top or 1), top * 1.1 + 0.05)
        ax.set_title(" / ".join(key), fontsize=11)
        ax.set_xlabel("cost (PFLOPs, log scale)")
        ax.set_ylabel("Avg-Gap to Retrain (lower is better)")
        panels.append((ax, points))
    handles = [plt.Line2D([], [], marker=shapes[m], color=colours[m], markeredgecolor="black", linestyle="",
                          markersize=8) for m in methods]
    fig.legend(handles, methods, title="method", loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=9)
    fig.suptitle("Quality against cost (mean over seeds; bars: 95% bootstrap interval)", fontsize=12)
    fig.tight_layout()
    for ax, points in panels:  # after the layout is final, so overlaps are judged where labels will be
        _place_labels(fig, ax, points)
    return save(fig, out_dir, stem)


def gap_bars(frame: pd.DataFrame, out_dir: Path, stem: str = "metric_gaps") -> list[Path]:
    """|gap to Retrain| per metric and Avg-Gap: a grid of panels (rows: blocks, columns: quantities),
    one horizontal bar per method with its name on the axis (Retrain itself left out: all zeros)."""
    quantities = {f"{m}_gap": m for m in frame_metrics(frame)} | {"avg_gap": "Avg-Gap"}
    data = frame[frame["method"] != "Retrain"]
    if data.empty:
        data = frame
    blocks = _blocks(data)
    methods = method_order(data["method"])
    colours = palette(method_order(frame["method"]))
    sns.set_theme(style="whitegrid", context="notebook")
    height = max(1.9, 0.8 + 0.32 * len(methods))
    fig, axes = plt.subplots(len(blocks), len(quantities), figsize=(3.3 * len(quantities) + 1.2, height * len(blocks) + 0.6),
                             squeeze=False, sharey=True)
    for row, (key, block) in enumerate(blocks):
        for col, (column, name) in enumerate(quantities.items()):
            ax = axes[row, col]
            present = [m for m in methods if m in set(block["method"])]
            sns.barplot(data=block, x=column, y="method", hue="method", order=present, hue_order=present,
                        palette=colours, errorbar=_ci_errorbar, capsize=0.3, err_kws={"linewidth": 1.1},
                        legend=False, ax=ax, orient="h")
            ends = [float(x) for line in ax.lines for x in line.get_xdata()] + list(block[column])
            top = float(np.nanmax(ends)) if ends else 0.0  # error-bar lines hold NaN where there is no interval
            if top > 0:
                ax.set_xlim(0, top * 1.08)
            else:  # every bar is exactly 0: say so instead of showing an empty, symmetric axis
                ax.set_xlim(0, 1)
                ax.text(0.5, 0.5, "0 for every method", transform=ax.transAxes, ha="center", va="center",
                        fontsize=9, color="dimgrey")
            ax.set_title(f"{name}" + (f"   ({' / '.join(key)})" if col == 0 else ""), fontsize=10, loc="left")
            ax.set_xlabel("|gap to Retrain|" if name != "Avg-Gap" else "Avg-Gap")
            ax.set_ylabel("")
    fig.suptitle("Gap to Retrain per metric, lower is better (mean over seeds; 95% bootstrap interval)", fontsize=12)
    fig.tight_layout()
    return save(fig, out_dir, stem)


def all_figures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    if frame.empty:
        return []
    return tradeoff(frame, out_dir) + gap_bars(frame, out_dir)

