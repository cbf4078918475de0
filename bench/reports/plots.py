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

from bench.metrics import GAP_METRICS  # noqa: E402
from bench.reports.frame import GROUP, REFERENCE_METHODS, method_order  # noqa: E402
from bench.reports.stats import bootstrap_interval  # noqa: E402

FORMATS = ("png", "svg")
DPI = 150


def save(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    """Write `stem`.png and `stem`.svg (via a temporary name, then rename: never half a file)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in FORMATS:
        path = out_dir / f"{stem}.{ext}"
        tmp = out_dir / f".{stem}.tmp.{ext}"
        fig.savefig(tmp, dpi=DPI, bbox_inches="tight", format=ext)
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


def tradeoff(frame: pd.DataFrame, out_dir: Path, stem: str = "tradeoff") -> list[Path]:
    """Avg-Gap (y) against PFLOPs (x, log) per method, one panel per block."""
    blocks = _blocks(frame)
    methods = method_order(frame["method"])
    colours = palette(methods)
    sns.set_theme(style="whitegrid", context="notebook")
    fig, axes = plt.subplots(1, len(blocks), figsize=(5.2 * len(blocks), 4.4), squeeze=False)
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
        pts = pd.DataFrame(points)
        sns.scatterplot(data=pts, x="x", y="y", hue="method", palette=colours, s=90, ax=ax, legend=False,
                        edgecolor="black", linewidth=0.6, zorder=3)
        for p in points:
            if p["err"] != (0.0, 0.0):
                ax.errorbar(p["x"], p["y"], yerr=[[p["err"][0]], [p["err"][1]]], color=colours[p["method"]],
                            capsize=4, lw=1.4, zorder=2)
            ax.annotate(p["label"], (p["x"], p["y"]), textcoords="offset points", xytext=(7, 5), fontsize=9)
        if (block["pflops"] == 0).any() and not positive.empty:  # mark the break between "0" and the log axis
            ax.axvline(np.sqrt(zero_at * positive.min()), color="grey", ls=":", lw=1)
        ax.set_xscale("log")
        lo, hi = pts["x"].min(), pts["x"].max()
        ax.set_xlim(lo / 3, hi * 8)  # room for the labels on the right
        ax.set_ylim(bottom=min(0.0, ax.get_ylim()[0]), top=ax.get_ylim()[1] * 1.08 + 0.05)
        ax.set_title(" / ".join(key), fontsize=11)
        ax.set_xlabel("cost (PFLOPs, log scale)")
        ax.set_ylabel("Avg-Gap to Retrain (lower is better)")
    fig.suptitle("Quality against cost (mean over seeds; bars: 95% bootstrap interval)", fontsize=12)
    fig.tight_layout()
    return save(fig, out_dir, stem)


def gap_bars(frame: pd.DataFrame, out_dir: Path, stem: str = "metric_gaps") -> list[Path]:
    """|gap to Retrain| per metric and Avg-Gap, one bar per method (Retrain itself left out: all zeros)."""
    quantities = {f"{m}_gap": m for m in GAP_METRICS} | {"avg_gap": "Avg-Gap"}
    data = frame[frame["method"] != "Retrain"]
    if data.empty:
        data = frame
    blocks = _blocks(data)
    methods = method_order(data["method"])
    colours = palette(method_order(frame["method"]))
    long = data.melt(id_vars=GROUP + ["method", "seed"], value_vars=list(quantities), var_name="quantity",
                     value_name="gap")
    long["quantity"] = long["quantity"].map(quantities)
    sns.set_theme(style="whitegrid", context="notebook")
    width = max(7.0, 1.1 * len(quantities) * max(1, len(methods)) * 0.45 + 2)
    fig, axes = plt.subplots(len(blocks), 1, figsize=(width, 3.4 * len(blocks)), squeeze=False)
    for ax, (key, _) in zip(axes[:, 0], blocks):
        part = long[(long[GROUP] == pd.Series(dict(zip(GROUP, key)))).all(axis=1)]
        sns.barplot(data=part, x="quantity", y="gap", hue="method", hue_order=[m for m in methods if m in set(part["method"])],
                    order=list(quantities.values()), palette=colours, errorbar=_ci_errorbar, capsize=0.15,
                    err_kws={"linewidth": 1.2}, ax=ax)
        ax.set_title(" / ".join(key), fontsize=11)
        ax.set_xlabel("")
        ax.set_ylabel("|gap to Retrain| (points)")
        ax.legend(title="method", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=9, title_fontsize=9)
    fig.suptitle("Gap to Retrain per metric, lower is better (mean over seeds; 95% bootstrap interval)", fontsize=12)
    fig.tight_layout()
    return save(fig, out_dir, stem)


def all_figures(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    if frame.empty:
        return []
    return tradeoff(frame, out_dir) + gap_bars(frame, out_dir)


__all__ = ["all_figures", "gap_bars", "tradeoff", "REFERENCE_METHODS"]
