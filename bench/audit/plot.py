"""figures/audit_epsilon.{png,svg}: per forget example, phi under the method against phi under
Retrain (means over replicas), coloured by the example's challenge epsilon, for the first
split of the audit (dataset, model, scenario, seed; audit_examples.csv has every split). Points on the
diagonal with epsilon 0 are forgotten as retraining would; a cloud above the diagonal is
what training on D_f left behind. Byte-for-byte repeatable (no dates, fixed SVG ids)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bench.audit.challenge import EPSILON_CAP  # noqa: E402

STEM = "audit_epsilon"


def epsilon_figure(table: pd.DataFrame, examples: pd.DataFrame, out_dir: Path, max_methods: int = 4) -> list[Path]:
    first = examples.iloc[0]
    group = ["dataset", "model", "scenario", "seed"]
    part = examples[np.logical_and.reduce([examples[c] == first[c] for c in group])]
    rows_of_split = table[np.logical_and.reduce([table[c] == first[c] for c in group])]
    methods = [m for m in rows_of_split["method"] if m in set(part["method"])][:max_methods]
    fig, axes = plt.subplots(1, len(methods), figsize=(3.3 * len(methods), 3.4), squeeze=False, sharex=True, sharey=True)
    lo = float(min(part["phi_retrain_mean"].min(), part["phi_method_mean"].min()))
    hi = float(max(part["phi_retrain_mean"].max(), part["phi_method_mean"].max()))
    scatter = None
    for ax, method in zip(axes[0], methods):
        rows = part[part["method"] == method]
        f = rows_of_split[rows_of_split["method"] == method]["F"].iloc[0]
        scatter = ax.scatter(rows["phi_retrain_mean"], rows["phi_method_mean"], c=np.minimum(rows["epsilon"], 6.0),
                             cmap="viridis", vmin=0, vmax=6.0, s=10, linewidths=0)
        ax.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, ls="--")
        ax.set_title(f"{method} (F = {f:.3f})", fontsize=9)
        ax.set_xlabel("phi under Retrain (mean)", fontsize=8)
    axes[0][0].set_ylabel("phi under the method (mean)", fontsize=8)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=axes[0].tolist(), shrink=0.85)
        bar.set_label(f"epsilon (capped at 6 for colour; cap {EPSILON_CAP:g})", fontsize=8)
    fig.suptitle(f"{first['dataset']} / {first['model']} / {first['scenario']}, seed {first['seed']}: "
                 "forget examples", fontsize=9)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context({"svg.hashsalt": "unlearn-bench-audit"}):
        for ext, meta in (("png", {"Software": None}), ("svg", {"Date": None, "Creator": None})):
            path = out_dir / f"{STEM}.{ext}"
            tmp = out_dir / f".{STEM}.tmp.{ext}"
            fig.savefig(tmp, dpi=150, format=ext, metadata=meta)
            tmp.replace(path)
            paths.append(path)
    plt.close(fig)
    return paths
