"""Command line: `python -m bench {run,list,tune,table,leaderboard,compare,baseline,embed,perf,imagetext-figures}`.

Exit status: 0 success; 1 some cells failed (the grid still finished) or `compare`
found a regression; 2 a usage error (one line on stderr saying what to do).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Any

from bench import paths
from bench.errors import ConfigError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see: python -m bench {self.prog.split()[-1]} --help)")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(t) for t in _csv(text)]
    except ValueError:
        raise ConfigError(f"--seeds takes integers separated by commas, got {text!r}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise ConfigError(f"--seeds takes integers >= 0, got {text!r}")
    return seeds


def _overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """--set METHOD.key=value (repeatable) -> {METHOD: {key: "value"}} (typed later by the method)."""
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        name, eq, value = item.partition("=")
        method, dot, key = name.partition(".")
        if not eq or not dot or not method or not key:
            raise ConfigError(f"--set takes METHOD.key=value, got {item!r}")
        out.setdefault(method.strip(), {})[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Benchmark machine-unlearning methods on image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a grid of (method x scenario x seed) cells and print the Avg-Gap table")
    run.add_argument("--profile", default="quick", help="profile name or .toml path (default: quick, offline digits on the CPU)")
    which = run.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every registered method (default: the profile's list)")
    which.add_argument("--methods", type=_csv, help="comma-separated method names (globs allowed, e.g. 'CU,HCU,F*')")
    run.add_argument("--scenarios", type=_csv, help="e.g. random10,random50,class9 (default: the profile's)")
    run.add_argument("--seeds", type=_seeds, help="e.g. 0,1,2 (default: the profile's)")
    run.add_argument("--device", help="auto, cpu or cuda (default: the profile's)")
    run.add_argument("--data-root", help=f"where datasets are looked for (default: ${paths.DATA_ENV} or ~/.cache/unlearn-bench/data)")
    run.add_argument("--cache-dir", help=f"decoded tensors and checkpoints (default: ${paths.CACHE_ENV} or ~/.cache/unlearn-bench)")
    run.add_argument("--results", help="results folder (default: results/local/<profile>, git-ignored)")
    run.add_argument("--force", action="store_true", help="redo cells that already have a finished record")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.key=value",
                     help="override a method hyperparameter (repeatable)")
    run.add_argument("--offline", action="store_true", help=f"never try to download data (also ${paths.OFFLINE_ENV}=1)")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (one line per cell instead)")

    sub.add_parser("list", help="list methods (with hyperparameters), datasets, models and profiles")

    table = sub.add_parser("table", help="write the Avg-Gap tables (summary.md/.csv/.tex) of a results folder and print one")
    table.add_argument("--results", default=str(paths.local_results("quick")),
                       help="results folder (default: results/local/quick, where `bench run` writes)")
    table.add_argument("--format", choices=("md", "csv", "latex"), default="md", help="what to print (default: md)")

    board = sub.add_parser("leaderboard", help="write leaderboard.md/.html and figures for each results folder")
    board.add_argument("--results", default="results",
                       help="a results folder, or a folder of them (one page each; default: results)")
    board.add_argument("--no-plots", action="store_true", help="pages without (re)drawing the figures")

    compare = sub.add_parser("compare", help="check results against a stored baseline; exit 1 on a regression")
    compare.add_argument("results", help="results folder (with records/) or a baseline file")
    compare.add_argument("--against", required=True, help="baseline file (e.g. results/quick/baseline.json) or results folder")
    compare.add_argument("--tolerance", action="append", default=[], metavar="QUANTITY:AMOUNT[:FLOOR]",
                         help="override a tolerance, e.g. TA:0.5, seconds:20%%, avg_gap:2sd:0.5 (repeatable)")
    compare.add_argument("--skip-timing", action="store_true", help="do not check seconds")

    base = sub.add_parser("baseline", help="store a results folder's summary as the baseline that compare checks against")
    base.add_argument("--results", required=True, help="results folder (with records/)")
    base.add_argument("--out", help="baseline file to write (default: <results>/baseline.json)")
    base.add_argument("--allow-failed", action="store_true", help="store it even if some cells failed")

    embed = sub.add_parser("embed", help="re-run one cell and draw its features before/after (t-SNE, Poincare disk)")
    embed.add_argument("--profile", default="quick", help="profile name or .toml path (default: quick)")
    embed.add_argument("--method", required=True, help="method name")
    embed.add_argument("--scenario", required=True, help="e.g. random10 or class9")
    embed.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    embed.add_argument("--view", type=_csv, help="tsne,poincare (default: both)")
    embed.add_argument("--max-points", type=int, default=2000, help="training samples drawn (default: 2000)")
    embed.add_argument("--curvature", type=float, default=1.0, help="Poincare ball curvature c (default: 1, the unit disk)")
    embed.add_argument("--out", help="folder for the figures (default: results/local/<profile>/figures)")
    embed.add_argument("--device", help="auto, cpu or cuda (default: the profile's)")
    embed.add_argument("--data-root", help="where datasets are looked for")
    embed.add_argument("--cache-dir", help="decoded tensors and checkpoints")
    embed.add_argument("--set", dest="overrides", action="append", default=[], metavar="METHOD.key=value",
                       help="override a method hyperparameter (repeatable)")
    embed.add_argument("--offline", action="store_true", help="never try to download data")

    figs = sub.add_parser("imagetext-figures", help="imagetext task: confusion, t-SNE, Poincare-disk and radial "
                                                    "pictures of each method against the Original (re-runs the cells)")
    figs.add_argument("--profile", default="imagetext-cpu", help="an imagetext profile (default: imagetext-cpu)")
    figs.add_argument("--methods", type=_csv, help="methods to draw (default: the profile's, less Retrain and Original)")
    figs.add_argument("--models", type=_csv, help="clip, meru (default: the profile's)")
    figs.add_argument("--view", type=_csv, help="confusion,tsne,poincare,radial (default: all; the last two MERU only)")
    figs.add_argument("--max-points", type=int, default=1000, help="test images drawn (default: 1000)")
    figs.add_argument("--out", help="folder for the PNGs (default: results/local/<profile>/figures)")
    figs.add_argument("--device", help="auto, cpu or cuda (default: the profile's)")
    figs.add_argument("--data-root", help="where datasets are looked for")
    figs.add_argument("--cache-dir", help="decoded tensors and checkpoints (Original/Retrain come from here)")
    figs.add_argument("--offline", action="store_true", help="never try to download data")

    perf = sub.add_parser("perf", help="training throughput (img/s): the engine against a plain eager loop; "
                                       "with --methods, each method against its FLOP count")
    perf.add_argument("--methods", type=_csv, help="per-method mode: these methods (or 'all') on --profile's setting")
    perf.add_argument("--profile", default="quick", help="per-method mode: profile (dataset, model, recipe; default quick)")
    perf.add_argument("--scenario", default="random10", help="per-method mode: scenario (default random10)")
    perf.add_argument("--seed", type=int, default=0, help="per-method mode: seed (default 0)")
    perf.add_argument("--dataset", default="digits", help="dataset to draw batches from (default: digits)")
    perf.add_argument("--models", type=_csv, help="models to measure (default: all)")
    perf.add_argument("--batch-sizes", type=_csv, default=["256"], help="e.g. 256,512 (default: 256)")
    perf.add_argument("--steps", type=int, default=30, help="timed steps per repeat (default: 30)")
    perf.add_argument("--device", default="auto", help="auto, cpu or cuda (default: auto)")
    perf.add_argument("--data-root", help="where datasets are looked for")
    perf.add_argument("--cache-dir", help="decoded-tensor cache")
    perf.add_argument("--threads", type=int, help="CPU threads")

    from bench.tune.command import add_parser as add_tune_parser

    add_tune_parser(sub)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    import torch

    from bench import profiles
    from bench.data.catalog import load_dataset
    from bench.grid import InProcessExecutor, plan, run_grid
    from bench.method import resolve_methods
    from bench.progress import Progress
    from bench.records import RecordStore
    from bench.reports.tables import write_summary

    profile = profiles.load(args.profile)
    if profile.threads:
        torch.set_num_threads(profile.threads)
    methods = resolve_methods(None if args.all else (args.methods or (list(profile.methods) if profile.methods else None)))
    data_root, cache_dir = paths.data_root(args.data_root), paths.cache_dir(args.cache_dir)
    download = profile.download and not args.offline and not paths.offline_by_env()
    cells, notes = plan(profile, methods, scenarios=args.scenarios, seeds=args.seeds, device=args.device,
                        data_root=data_root, cache_dir=cache_dir, download=download, overrides=_overrides(args.overrides))
    from bench.cell import resolve_device

    resolve_device(cells[0].device)  # a missing GPU is a usage error now, not 40 failed cells later
    load_dataset(cells[0].dataset, data_root, cache=cache_dir, download=download)  # likewise missing data

    progress = Progress(enabled=False if args.no_progress else None)
    for note in notes:
        progress.write(f"note: {note}")
    results_dir = Path(args.results) if args.results else paths.local_results(profile.name)
    store = RecordStore(results_dir)
    progress.write(f"profile {profile.name}: {len(cells)} cells -> {results_dir}")
    summary = run_grid(cells, store, InProcessExecutor(progress), progress, force=args.force)

    from bench.tasks import TASKS

    task = TASKS.get(profile.task)
    if task.summary_writer:  # a task with its own metrics writes its own table
        print(task.write_summary(list(store.all()), results_dir), end="")
    else:
        markdown, csv_path, md_path = write_summary(store.all(), results_dir)
        print(markdown, end="")
        print(f"tables: {csv_path}, {md_path}", file=sys.stderr)
    if summary.failed:
        print(f"{len(summary.failed)} of {summary.ran} cells failed:", file=sys.stderr)
        for record in summary.failed:
            print(f"  {record['cell_id']}: {record['error']}", file=sys.stderr)
        return 1
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench import profiles
    from bench.data.catalog import DATASETS
    from bench.method import METHODS
    from bench.models import MODELS

    print("methods:")
    for name in METHODS:
        info = METHODS.get(name)
        kinds = "" if len(info.scenarios) == 2 else f" [{'/'.join(info.scenarios)} only]"
        print(f"  {name:<12} {info.summary}{kinds}")
        for spec in info.param_specs():
            print(f"      {spec.describe()}")
        if info.smoke:
            print(f"      smoke runs: {', '.join(f'{k}={v}' for k, v in info.smoke.items())}")
    print("datasets:")
    for name in DATASETS:
        d = DATASETS.get(name)
        print(f"  {name:<14} {d.train_size} train / {d.test_size} test, {d.channels}x{d.image_size}x{d.image_size}, "
              f"{d.num_classes} classes, default model {d.default_model}")
    print("models:")
    for name in MODELS:
        doc = (MODELS.get(name).__doc__ or "").strip().splitlines()[0]
        print(f"  {name:<14} {doc}")
    print("profiles:")
    for name in profiles.available():
        p = profiles.load(name)
        print(f"  {name:<14} {p.description}")
    return 0


def cmd_perf(args: argparse.Namespace) -> int:
    import torch

    from bench.cell import resolve_device
    from bench.data.catalog import load_dataset
    from bench.models import MODELS
    from bench.perf import measure, render

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.steps < 1:
        raise ConfigError("--steps must be >= 1")
    try:
        batch_sizes = [int(b) for b in args.batch_sizes]
    except ValueError:
        raise ConfigError(f"--batch-sizes takes integers, got {','.join(args.batch_sizes)!r}") from None
    if args.methods:
        return _perf_methods(args)
    device = resolve_device(args.device)
    models = args.models or list(MODELS)
    for m in models:
        MODELS.get(m)
    data = load_dataset(args.dataset, paths.data_root(args.data_root), cache=paths.cache_dir(args.cache_dir),
                        download=not paths.offline_by_env())
    results = [measure(data, m, device, b, steps=args.steps) for m in models for b in batch_sizes]
    print(render(results), end="")
    return 0


def _perf_methods(args: argparse.Namespace) -> int:
    """bench perf --methods: each method's procedure against its FLOP count at the plain step's rate."""
    from bench import profiles
    from bench.data.catalog import load_dataset
    from bench.grid import plan
    from bench.method import resolve_methods
    from bench.perf import measure_methods, plain_flop_rate, render_methods

    profile = profiles.load(args.profile)
    if args.threads or profile.threads:
        import torch

        torch.set_num_threads(args.threads or profile.threads)
    chosen = resolve_methods(None if args.methods == ["all"] else args.methods)
    data_root, cache_dir = paths.data_root(args.data_root), paths.cache_dir(args.cache_dir)
    download = profile.download and not paths.offline_by_env()
    device = None if args.device == "auto" and profile.device != "auto" else args.device
    cells, _ = plan(profile, chosen, scenarios=[args.scenario], seeds=[args.seed], device=device,
                    data_root=data_root, cache_dir=cache_dir, download=download)
    cells = [c for c in cells if c.method not in ("Retrain", "Original")]  # training itself / nothing to time
    if not cells:
        raise ConfigError("--methods: nothing to time (Retrain is the training loop itself, Original does nothing)")
    from bench.cell import resolve_device

    data = load_dataset(cells[0].dataset, data_root, cache=cache_dir, download=download)
    rate = plain_flop_rate(data, cells[0].model, resolve_device(cells[0].device), profile.train.batch_size, args.steps)
    print(render_methods(measure_methods(cells, rate), rate), end="")
    return 0


def _report(name: str):
    """A report command, imported only when used (pandas, seaborn, scipy load slowly)."""

    def command(args: argparse.Namespace) -> int:
        from bench.reports import commands

        return getattr(commands, name)(args)

    return command


def cmd_tune(args: argparse.Namespace) -> int:
    from bench.tune.command import cmd_tune as run

    return run(args)


def cmd_imagetext_figures(args: argparse.Namespace) -> int:
    from bench.tasks.imagetext.figures import command

    return command(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "perf": cmd_perf, "tune": cmd_tune, "imagetext-figures": cmd_imagetext_figures, **{
    name: _report(name) for name in ("table", "leaderboard", "compare", "baseline", "embed")}}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)
    try:
        args = build_parser().parse_args(argv)
        from bench.plugins import load_all_methods

        load_all_methods()
        return COMMANDS[args.command](args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `bench list | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
