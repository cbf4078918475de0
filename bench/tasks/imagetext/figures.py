"""Pictures of the imagetext task: each method's cell is run again (Original and Retrain
come from the checkpoint cache) and its dual encoder is drawn against the Original's.

- confusion: zero-shot confusion matrices (seen templates) of Original, the method, Retrain;
- t-SNE: test images (dots) and class prompts (triangles), before and after; CLIP's unit
  vectors, MERU's tangent vectors at the origin (logmap0), one joint t-SNE per panel;
- Poincare disk (MERU): hyperboloid -> Poincare ball, x / (1 + sqrt(c) x_time), scaled by
  sqrt(c) into the unit disk; the 2-D direction is the PCA of the ball points, the radius
  each point's own (so distance to the origin, i.e. genericity, is shown exactly);
- radial: the distribution of d(origin, x) of forgotten vs retained test images, before and
  after, with the forgotten concepts' prompts marked (MERU).
Files are PNGs with fixed metadata (deterministic for a given run).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from bench.progress import SILENT, Progress
from bench.tasks.imagetext import lorentz
from bench.tasks.imagetext.cell import prepare
from bench.tasks.imagetext.evaluate import class_embeddings, confusion, image_embeddings, predictions

VIEWS = ("confusion", "tsne", "poincare", "radial")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out_dir: Path, stem: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path, tmp = out_dir / f"{stem}.png", out_dir / f".{stem}.tmp.png"
    fig.savefig(tmp, dpi=120, bbox_inches="tight", metadata={"Software": None})
    tmp.replace(path)
    _plt().close(fig)
    return path


def _stem(view: str, model: str, method: str, scenario: str, seed: int) -> str:
    return f"{view}_{model}_{re.sub(r'[^A-Za-z0-9+.-]', '-', method)}_{scenario}_s{seed}"


def _subset(labels: torch.Tensor, max_points: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=g)[:max_points]
    return order.sort().values


@torch.no_grad()
def _embeddings(engine, model, data, bank) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    images = image_embeddings(engine, model, data)
    texts = class_embeddings(model, bank, "seen")
    return images.cpu().numpy(), texts.float().cpu().numpy()


def _tangent(x: np.ndarray, model) -> np.ndarray:
    if not model.hyperbolic:
        return x
    return lorentz.logmap0(torch.as_tensor(x), model.curvature().item()).numpy()


def poincare_points(x: np.ndarray, c: float) -> np.ndarray:
    """Hyperboloid space components -> the unit Poincare disk (2-D: PCA direction, exact radius)."""
    t = np.sqrt(1.0 / c + (x * x).sum(1, keepdims=True))
    ball = np.sqrt(c) * x / (1.0 + np.sqrt(c) * t)  # in the unit ball
    centred = ball - ball.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    flat = ball @ vt[:2].T
    radius = np.linalg.norm(ball, axis=1, keepdims=True)
    return flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12) * radius


def _scatter(ax, pts_img, labels, pts_txt, names, forgotten, colours):
    for k, name in enumerate(names):
        sel = labels == k
        ax.scatter(pts_img[sel, 0], pts_img[sel, 1], s=8 if k not in forgotten else 14, color=colours[k], alpha=0.6,
                   linewidths=0, label=name + (" (forgotten)" if k in forgotten else ""))
        ax.scatter(pts_txt[k, 0], pts_txt[k, 1], s=140, marker="^", color=colours[k], edgecolors="black", linewidths=1.2)
    ax.set_xticks([])
    ax.set_yticks([])


def draw(spec, out_dir: Path, views=VIEWS, max_points: int = 1000, tsne_iterations: int = 1000,
         progress: Progress = SILENT) -> list[Path]:
    """Run the cell `spec` and draw its pictures; return the files written."""
    from bench.reports.embeddings import tsne_2d

    plt = _plt()
    cell = prepare(spec, progress)
    engine, bank, forgotten = cell.engine, cell.bank, cell.forgotten
    before = cell.refs.load(cell.original_state)
    cell.method_params.run(cell.ctx)
    cell.towers.detach()
    after = cell.ctx.model
    names = list(bank.classes)
    colours = plt.get_cmap("tab10").colors
    pick = _subset(cell.test.labels.cpu(), max_points, spec.seed).to(cell.test.labels.device)
    test = cell.test.take(pick)
    labels = test.labels.cpu().numpy()
    where = f"{spec.model.upper()} {spec.method}, forgotten: {', '.join(names[k] for k in forgotten)}"
    stem = lambda view: _stem(view, spec.model, spec.method, spec.scenario, spec.seed)  # noqa: E731
    paths = []

    if "confusion" in views:
        retrain_state, _ = cell.ctx._retrain_provider()
        models = (("Original", before), (spec.method, after), ("Retrain", cell.refs.load(retrain_state)))
        fig, axes = plt.subplots(1, 3, figsize=(16, 5))
        for ax, (title, model) in zip(axes, models):
            matrix = np.array(confusion(predictions(engine, model, cell.test, bank)["seen"], cell.test.labels, len(names)))
            ax.imshow(matrix, vmin=0, vmax=100, cmap="viridis")
            ax.set_xticks(range(len(names)), names, rotation=90, fontsize=8)
            ax.set_yticks(range(len(names)), names, fontsize=8)
            for k in forgotten:
                ax.add_patch(plt.Rectangle((-0.5, k - 0.5), len(names), 1, fill=False, color="red", lw=1.5))
            ax.set_title(title)
            ax.set_xlabel("predicted (zero-shot, seen templates)")
        fig.suptitle(f"Confusion (% of each true class), {where}")
        paths.append(_save(fig, out_dir, stem("confusion")))

    emb = {name: _embeddings(engine, model, test, bank) for name, model in (("before", before), ("after", after))}
    if "tsne" in views:
        fig, axes = plt.subplots(1, 2, figsize=(13, 6))
        for ax, (panel, (img, txt)) in zip(axes, emb.items()):
            model = before if panel == "before" else after
            joint = tsne_2d(np.concatenate([_tangent(img, model), _tangent(txt, model)]), spec.seed, tsne_iterations)
            _scatter(ax, joint[: len(img)], labels, joint[len(img):], names, forgotten, colours)
            ax.set_title("before: Original" if panel == "before" else f"after: {spec.method}")
        axes[1].legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8, markerscale=2)
        fig.suptitle(f"t-SNE of image (dots) and class-prompt (triangles) embeddings, {where}")
        paths.append(_save(fig, out_dir, stem("tsne")))

    if before.hyperbolic and "poincare" in views:
        fig, axes = plt.subplots(1, 2, figsize=(13, 6.4))
        for ax, (panel, (img, txt)) in zip(axes, emb.items()):
            c = (before if panel == "before" else after).curvature().item()
            pts = poincare_points(np.concatenate([img, txt]), c)
            _scatter(ax, pts[: len(img)], labels, pts[len(img):], names, forgotten, colours)
            ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, color="black", lw=1.0))
            ax.set_xlim(-1.05, 1.05)
            ax.set_ylim(-1.05, 1.05)
            ax.set_aspect("equal")
            ax.set_title(("before: Original" if panel == "before" else f"after: {spec.method}") + f" (c = {c:.3g})")
        axes[1].legend(bbox_to_anchor=(1.01, 1), loc="upper left", fontsize=8, markerscale=2)
        fig.suptitle(f"Poincare disk (radius exact, direction by PCA), {where}")
        paths.append(_save(fig, out_dir, stem("poincare")))

    if before.hyperbolic and "radial" in views:
        fig, axes = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
        is_forgotten = np.isin(labels, forgotten)
        for ax, (panel, (img, txt)) in zip(axes, emb.items()):
            c = (before if panel == "before" else after).curvature().item()
            radius = lambda x: np.arcsinh(np.sqrt(c) * np.linalg.norm(x, axis=1)) / np.sqrt(c)  # noqa: E731
            r = radius(img)
            bins = np.linspace(0, max(r.max(), radius(txt).max()) * 1.05, 40)
            ax.hist(r[~is_forgotten], bins=bins, density=True, alpha=0.6, label="retained-class images")
            ax.hist(r[is_forgotten], bins=bins, density=True, alpha=0.6, label="forgotten-class images")
            for k in forgotten:
                ax.axvline(radius(txt[k : k + 1])[0], color="red", ls="--", label=f"prompt '{names[k]}'")
            ax.set_xlabel("hyperbolic distance to the origin")
            ax.set_title("before: Original" if panel == "before" else f"after: {spec.method}")
        axes[1].legend(fontsize=8)
        fig.suptitle(f"Radial distribution, {where}")
        paths.append(_save(fig, out_dir, stem("radial")))
    return paths


def command(args) -> int:
    """`bench imagetext-figures`: the pictures of every (model, method) cell of a profile."""
    from bench import paths as bench_paths
    from bench import profiles
    from bench.errors import ConfigError
    from bench.grid import plan
    from bench.method import REFERENCE_METHODS, resolve_methods
    from bench.progress import Progress

    profile = profiles.load(args.profile)
    if profile.task != "imagetext":
        raise ConfigError(f"profile {profile.name} is a {profile.task} profile; imagetext-figures needs an imagetext one")
    if profile.threads:
        torch.set_num_threads(profile.threads)
    views = args.view or list(VIEWS)
    unknown = sorted(set(views) - set(VIEWS))
    if unknown:
        raise ConfigError(f"--view: unknown view {unknown[0]!r}; choose from {', '.join(VIEWS)}")
    if args.max_points < 10:
        raise ConfigError("--max-points must be >= 10")
    chosen = resolve_methods(args.methods or [m for m in (profile.methods or ()) if m not in REFERENCE_METHODS] or None)
    download = profile.download and not args.offline and not bench_paths.offline_by_env()
    cells, _ = plan(profile, chosen, device=args.device, data_root=bench_paths.data_root(args.data_root),
                    cache_dir=bench_paths.cache_dir(args.cache_dir), download=download)
    cells = [c for c in cells if c.method not in REFERENCE_METHODS and (not args.models or c.model in args.models)]
    if not cells:
        raise ConfigError("nothing to draw: choose methods other than Retrain and Original")
    out = Path(args.out) if args.out else bench_paths.local_results(profile.name) / "figures"
    progress = Progress(enabled=False)
    for spec in cells:
        for path in draw(spec, out, views, args.max_points, progress=progress):
            print(path)
    return 0
