"""Pictures of the penultimate features before (the Original) and after unlearning.

Records do not keep models, so the cell is run again in-process (`prepare_cell`, then the
method's `run`), with the same spec as the grid would use. Two views:

- t-SNE (scikit-learn) of the features, coloured by class, forget samples marked;
- the Poincare disk: the L2-normalised features are projected to 2-D (PCA), scaled so
  that 90% of the points lie within `RADIUS_QUANTILE_TARGET` of the origin in the
  tangent space, and mapped into the disk with geoopt's `PoincareBall(c).expmap0`; the
  disk's boundary (radius 1/sqrt(c): the unit circle for c = 1) is drawn. This works
  for any method's features, HCU's included, without depending on its module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from bench.cell import CellSpec, PreparedCell, prepare_cell
from bench.data.device_data import DeviceData
from bench.progress import SILENT, Progress

VIEWS = ("tsne", "poincare")
RADIUS_QUANTILE_TARGET = 1.5  # tangent-space norm of the 90th-percentile point: tanh(1.5) = 0.905 of the radius


@dataclass(frozen=True)
class FeatureSet:
    before: np.ndarray  # (n, d) features of the Original model
    after: np.ndarray  # (n, d) features after unlearning
    labels: np.ndarray  # (n,) class of each sample
    forget: np.ndarray  # (n,) bool: the sample is in D_f


def sample_points(retain: DeviceData, forget: DeviceData, max_points: int, seed: int) -> tuple[DeviceData, np.ndarray]:
    """Up to `max_points` training samples drawn uniformly from D_r and D_f together (fixed seed),
    and which of them are forget samples."""
    images = torch.cat([retain.images, forget.images])
    labels = torch.cat([retain.labels, forget.labels])
    index = torch.cat([retain.index, forget.index])
    is_forget = torch.cat([torch.zeros(len(retain), dtype=torch.bool), torch.ones(len(forget), dtype=torch.bool)])
    n = len(images)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    pick = torch.randperm(n, generator=gen)[: min(max_points, n)].sort().values
    chosen = DeviceData(images[pick.to(images.device)], labels[pick.to(labels.device)], index[pick.to(index.device)], "embedding sample")
    return chosen, is_forget[pick].numpy()


@torch.no_grad()
def features(cell: PreparedCell, data: DeviceData, batch_size: int = 1024) -> np.ndarray:
    """Penultimate (pooled) features of the cell's current model, eval mode, no augmentation."""
    model = cell.model
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(data), batch_size):
            pos = torch.arange(start, min(start + batch_size, len(data)), device=cell.engine.device)
            batch = cell.engine.batch_at(data, pos, None, augment=False)
            with cell.engine.autocast():
                out.append(model.features(batch.x).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()


def collect(spec: CellSpec, max_points: int = 2000, progress: Progress = SILENT) -> FeatureSet:
    """Run the cell and return the sampled features before and after the method."""
    cell = prepare_cell(spec, progress)
    data, is_forget = sample_points(cell.ctx.retain, cell.ctx.forget, max_points, spec.seed)
    before = features(cell, data)
    cell.params.run(cell.ctx)
    after = features(cell, data)
    cell.counter.detach()
    return FeatureSet(before, after, data.labels.cpu().numpy(), is_forget)


EXACT_TSNE_UP_TO = 500  # points; below this the exact gradient is both faster and more faithful than Barnes-Hut


def tsne_2d(x: np.ndarray, seed: int = 0, iterations: int = 1000) -> np.ndarray:
    from sklearn.manifold import TSNE

    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3)))
    method = "exact" if len(x) <= EXACT_TSNE_UP_TO else "barnes_hut"
    return TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed, method=method,
                max_iter=iterations).fit_transform(x)


def poincare_2d(x: np.ndarray, curvature: float = 1.0) -> np.ndarray:
    """Normalised features -> 2-D PCA -> scaled -> expmap0 into the Poincare disk of curvature -c."""
    import warnings

    with warnings.catch_warnings():  # geoopt uses torch.jit.script, deprecated in torch 2.x
        warnings.simplefilter("ignore", FutureWarning)
        from geoopt import PoincareBall

    unit = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    centred = unit - unit.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    flat = centred @ vt[:2].T
    reach = np.quantile(np.linalg.norm(flat, axis=1), 0.9)
    tangent = flat * (RADIUS_QUANTILE_TARGET / (np.sqrt(curvature) * max(reach, 1e-12)))
    ball = PoincareBall(c=curvature)
    return ball.expmap0(torch.as_tensor(tangent, dtype=torch.float64)).numpy()


def plot(points_before: np.ndarray, points_after: np.ndarray, fs: FeatureSet, class_names: Sequence[str],
         view: str, title: str, curvature: float = 1.0):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    sns.set_theme(style="white", context="notebook")
    names = [class_names[i] if i < len(class_names) else str(i) for i in range(int(fs.labels.max()) + 1)]
    colours = dict(zip(names, sns.color_palette("tab10" if len(names) <= 10 else "husl", len(names))))
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.2))
    for ax, pts, panel in ((axes[0], points_before, "before: Original"), (axes[1], points_after, "after unlearning")):
        frame = pd.DataFrame({"x": pts[:, 0], "y": pts[:, 1], "class": [names[i] for i in fs.labels],
                              "forget": fs.forget})
        retained = frame[~frame["forget"]]
        forgotten = frame[frame["forget"]]
        sns.scatterplot(data=retained, x="x", y="y", hue="class", hue_order=names, palette=colours, s=14,
                        alpha=0.55, linewidth=0, ax=ax, legend=ax is axes[1])
        sns.scatterplot(data=forgotten, x="x", y="y", hue="class", hue_order=names, palette=colours, s=60,
                        marker="X", edgecolor="black", linewidth=0.7, ax=ax, legend=False)
        if view == "poincare":
            radius = 1.0 / np.sqrt(curvature)
            ax.add_patch(plt.Circle((0, 0), radius, fill=False, color="black", lw=1.2))
            ax.set_xlim(-1.05 * radius, 1.05 * radius)
            ax.set_ylim(-1.05 * radius, 1.05 * radius)
            ax.set_aspect("equal")
            for spine in ax.spines.values():  # the disk's boundary is the frame
                spine.set_visible(False)
        ax.set_title(f"{panel}  ({int(fs.forget.sum())} forget samples: black-edged X)", fontsize=11)
        ax.set_xlabel("")
        ax.set_ylabel("")
        ax.set_xticks([])
        ax.set_yticks([])
    handles, labels = axes[1].get_legend_handles_labels()
    handles.append(plt.Line2D([], [], marker="X", color="grey", markeredgecolor="black", linestyle="", markersize=9))
    labels.append("forget sample")
    axes[1].legend(handles, labels, title="class", bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=9)
    fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return fig


def file_stem(method: str, scenario: str, seed: int, view: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9+.-]", "-", method)
    return f"embed_{safe}_{scenario}_s{seed}_{view}"


def embed(spec: CellSpec, out_dir: Path, class_names: Sequence[str], views: Sequence[str] = VIEWS,
          max_points: int = 2000, curvature: float = 1.0, tsne_iterations: int = 1000,
          progress: Progress = SILENT) -> list[Path]:
    """Run the cell, draw each view before/after, and save PNG and SVG; return the paths."""
    from bench.reports.plots import save

    fs = collect(spec, max_points, progress)
    where = f"{spec.dataset}/{spec.model} {spec.scenario}, seed {spec.seed}, {len(fs.labels)} training samples"
    paths: list[Path] = []
    for view in views:
        if view == "tsne":
            before, after = tsne_2d(fs.before, spec.seed, tsne_iterations), tsne_2d(fs.after, spec.seed, tsne_iterations)
            title = f"t-SNE of penultimate features, Original vs {spec.method} ({where})"
        else:
            before, after = poincare_2d(fs.before, curvature), poincare_2d(fs.after, curvature)
            title = (f"Poincare disk (c={curvature:g}) of normalised features, Original vs {spec.method} ({where})")
        fig = plot(before, after, fs, class_names, view, title, curvature)
        paths += save(fig, out_dir, file_stem(spec.method, spec.scenario, spec.seed, view))
    return paths
