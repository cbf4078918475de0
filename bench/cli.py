"""Command line: `python -m bench {run,list,tune,table,leaderboard,audit,compare,baseline,embed,perf,imagetext-figures}`.

Exit status: 0 success; 1 some cells failed (the grid still finished) or `compare`
found a regression; 2 a usage error (one line on stderr saying what to do).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Sequence

from bench import paths
from bench.cli_setup import CellSetup, add_cell_options, at_least, csv, seeds, writable_folder
from bench.errors import ConfigError, UsageError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        command = " ".join(self.prog.split()[1:])  # "" for the top level, "run" for `bench run`
        raise ConfigError(f"{message} (see: python -m bench {command + ' ' if command else ''}--help)")


def _batch_sizes(text: str) -> list[int]:
    return [at_least(1, "--batch-sizes")(t) for t in csv(text)] or [256]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bench", description="Benchmark machine-unlearning methods on image classifiers.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run a grid of (method x scenario x seed) cells and print the Avg-Gap table")
    add_cell_options(run)
    which = run.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every registered method (default: the profile's list)")
    which.add_argument("--methods", type=csv, help="comma-separated method names (globs allowed, e.g. 'CU,HCU,F*')")
    run.add_argument("--scenarios", type=csv, help="e.g. random10,random50,class9 (default: the profile's)")
    run.add_argument("--seeds", type=seeds, help="e.g. 0,1,2 (default: the profile's)")
    run.add_argument("--results", help="results folder (default: results/local/<profile>, git-ignored)")
    run.add_argument("--force", action="store_true", help="redo cells that already have a finished record")
    run.add_argument("--dry-run", action="store_true",
                     help="list the planned cells, each done or to run in the results folder, and stop (nothing "
                          "is trained or recorded): what a resumed grid, or a GPU chunk, has left")
    run.add_argument("--keep-older-code", action="store_true",
                     help="count a finished record made by other code (same settings otherwise) as done: resuming a "
                          "grid across code changes, e.g. GPU chunks run weeks apart; tables flag rows that mix code "
                          "versions")
    run.add_argument("--replicas", type=at_least(1, "--replicas"), metavar="K",
                     help="audit replicas: K Retrain seeds and K method seeds per scenario (default: the profile's [audit])")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (one line per cell instead)")
    run.add_argument("--executor", choices=("local", "ray"), default="local",
                     help="local: this machine's worker pool (default); ray: Ray tasks (pip install -e '.[ray]')")
    run.add_argument("--workers", type=at_least(1, "--workers"), help="parallel workers (default: GPUs x cells-per-gpu; on a CPU-only machine, "
                     "as many as the profile's threads per cell fill the cores)")
    run.add_argument("--keep-threads", action="store_true",
                     help="with --workers on a CPU: each worker keeps the profile's threads per cell instead of "
                          "cores / workers (the same numbers as any other layout, but the cores may be oversubscribed)")
    run.add_argument("--cells-per-gpu", type=at_least(1, "--cells-per-gpu"), help="cells sharing each GPU (default: 2)")
    run.add_argument("--address", help="--executor ray: join this Ray cluster (default: start a local Ray)")

    sub.add_parser("list", help="list methods (with hyperparameters), datasets, models and profiles")

    table = sub.add_parser("table", help="write the Avg-Gap tables (summary.md/.csv/.tex) of a results folder and print one")
    table.add_argument("--results", default=str(paths.local_results("quick")),
                       help="results folder (default: results/local/quick, where `bench run` writes)")
    table.add_argument("--format", choices=("md", "csv", "latex"), default="md", help="what to print (default: md)")
    table.add_argument("--reference", nargs="?", const="coun", metavar="CSV",
                       help="also write summary-published.md: our rows beside CoUn's published ones for the matching "
                            "settings, Avg-Gap in the paper's form (default CSV: the bundled copy of CoUn's figures)")

    board = sub.add_parser("leaderboard", help="write leaderboard.md/.html and figures for each results folder")
    board.add_argument("--results", default=str(paths.LOCAL_RESULTS),
                       help="a results folder, or a folder of them (one page each; default: results/local, "
                            "where `bench run` writes; results/quick holds the published ones)")
    board.add_argument("--no-plots", action="store_true", help="pages without (re)drawing the figures")

    audit = sub.add_parser("audit", help="per-example privacy audit of a folder's replicas (challenge score, U-LiRA, KLoM)")
    audit.add_argument("--results", default=str(paths.local_results("quick")),
                       help="results folder with replicas (from `bench run --replicas K`; default: results/local/quick)")
    audit.add_argument("--variance", choices=("per_example", "global"), default="per_example",
                       help="U-LiRA's Gaussians: per-example variances (default) or one pooled variance per kind")
    audit.add_argument("--plot-methods", type=int, default=4, help="methods drawn in figures/audit_epsilon (default: 4)")

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
    base.add_argument("--spread-from", help="results folder of the same profile run with other seeds: each entry "
                                            "stores its measured seed std, which compare's sd tolerances scale with")

    embed = sub.add_parser("embed", help="re-run one cell and draw its features before/after (t-SNE, Poincare disk)")
    add_cell_options(embed)
    embed.add_argument("--method", required=True, help="method name")
    embed.add_argument("--scenario", required=True, help="e.g. random10 or class9")
    embed.add_argument("--seed", type=at_least(0, "--seed"), default=0, help="seed (default: 0)")
    embed.add_argument("--view", type=csv, help="tsne,poincare (default: both)")
    embed.add_argument("--max-points", type=at_least(10, "--max-points"), default=2000,
                       help="training samples drawn (default: 2000)")
    embed.add_argument("--curvature", type=float, default=1.0, help="Poincare ball curvature c (default: 1, the unit disk)")
    embed.add_argument("--out", help="folder for the figures (default: results/local/<profile>/figures)")

    figs = sub.add_parser("imagetext-figures", help="imagetext task: confusion, t-SNE, Poincare-disk and radial "
                                                    "pictures of each method against the Original (re-runs the cells)")
    figs.add_argument("--profile", default="imagetext-cpu", help="an imagetext profile (default: imagetext-cpu)")
    figs.add_argument("--methods", type=csv, help="methods to draw (default: the profile's, less Retrain and Original)")
    figs.add_argument("--models", type=csv, help="clip, meru (default: the profile's)")
    figs.add_argument("--view", type=csv, help="confusion,tsne,poincare,radial (default: all; the last two MERU only)")
    figs.add_argument("--max-points", type=at_least(10, "--max-points"), default=1000, help="test images drawn (default: 1000)")
    figs.add_argument("--out", help="folder for the PNGs (default: results/local/<profile>/figures)")
    figs.add_argument("--device", help="auto, cpu or cuda (default: the profile's)")
    figs.add_argument("--data-root", help="where datasets are looked for")
    figs.add_argument("--cache-dir", help="decoded tensors and checkpoints (Original/Retrain come from here)")
    figs.add_argument("--offline", action="store_true", help="never try to download data")

    perf = sub.add_parser("perf", help="training throughput (img/s): the engine against a plain eager loop; "
                                       "with --methods, each method against its FLOP count")
    add_cell_options(perf, profile_help="per-method mode: profile (dataset, model, recipe; default quick)")
    perf.add_argument("--methods", type=csv, help="per-method mode: these methods (or 'all') on --profile's setting")
    perf.add_argument("--scenario", default="random10", help="per-method mode: scenario (default random10)")
    perf.add_argument("--seed", type=at_least(0, "--seed"), default=0, help="per-method mode: seed (default 0)")
    perf.add_argument("--dataset", default="digits", help="dataset to draw batches from (default: digits)")
    perf.add_argument("--models", type=csv, help="models to measure (default: all)")
    perf.add_argument("--batch-sizes", type=_batch_sizes, default=[256], help="e.g. 256,512 (default: 256)")
    perf.add_argument("--steps", type=at_least(1, "--steps"), default=30, help="timed steps per repeat (default: 30)")

    from bench.tune.command import add_parser as add_tune_parser

    add_tune_parser(sub)
    return parser


def cmd_run(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    setup = CellSetup.from_args(args, methods=None if args.all else args.methods, scenarios=args.scenarios,
                                seeds=args.seeds, argv=argv)
    setup.replicas = args.replicas
    results_dir = Path(args.results) if args.results else paths.local_results(setup.profile.name)
    if args.dry_run:
        return dry_run(setup, results_dir, args)
    results_dir = writable_folder(results_dir, "--results")
    cells = setup.plan()

    from bench.executors import make_executor
    from bench.grid import run_grid
    from bench.progress import Progress
    from bench.records import RecordStore
    from bench.reports.tables import write_summary

    progress = Progress(enabled=False if args.no_progress else None)
    for note in setup.notes:
        progress.write(f"note: {note}")
    store = RecordStore(results_dir, keep_older_code=args.keep_older_code)
    progress.write(f"profile {setup.profile.name}: {len(cells)} cells -> {results_dir}")
    executor = make_executor(args.executor, progress, device=cells[0].device, workers=args.workers,
                             cells_per_gpu=args.cells_per_gpu, address=args.address, threads=setup.profile.threads,
                             pin_threads=args.keep_threads)
    summary = run_grid(cells, store, executor, progress, force=args.force)
    if any(c.replica for c in cells):
        from bench.audit.report import write_audit

        _, written = write_audit(results_dir)
        progress.write(f"audit: {', '.join(str(p) for p in written[:2])}")

    from bench.tasks import TASKS

    task = TASKS.get(setup.profile.task)
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


def dry_run(setup: CellSetup, results_dir: Path, args: argparse.Namespace) -> int:
    """`run --dry-run`: each planned cell, done or to run, as a resumed run would see it."""
    from bench.records import RecordStore

    cells = setup.plan(check_data=False)  # a listing: the data need not be there, nor be decoded
    for note in setup.notes:
        print(f"note: {note}", file=sys.stderr)
    store = RecordStore(results_dir, keep_older_code=args.keep_older_code)
    todo = 0
    for spec in cells:
        done = not args.force and store.is_done(spec)
        todo += not done
        print(f"{'done' if done else 'run '}  {spec.cell_id}")
    print(f"profile {setup.profile.name}: {len(cells) - todo} of {len(cells)} cells done in {results_dir}, "
          f"{todo} to run", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    """Everything here is read without importing torch (methods from their source, see bench.method_index)."""
    from bench import profiles
    from bench.data.catalog import DATASETS
    from bench.method_index import method_index, model_index

    methods = method_index()
    print("methods:")
    for name in methods:
        info = methods.get(name)
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
    for name, summary in model_index().items():
        print(f"  {name:<14} {summary}")
    print("profiles:")
    for name in profiles.available():
        p = profiles.load(name)
        print(f"  {name:<14} {p.description}")
    return 0


def cmd_perf(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    if args.methods:
        return _perf_methods(args, argv)
    from bench import cli_setup

    data_root, cache_dir = cli_setup.data_root(args.data_root), cli_setup.cache_dir(args.cache_dir)
    import torch

    from bench.cell import resolve_device
    from bench.data.catalog import load_dataset
    from bench.models import MODELS
    from bench.perf import measure, render

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device or "auto")
    models = args.models or list(MODELS)
    for m in models:
        MODELS.get(m)
    data = load_dataset(args.dataset, data_root, cache=cache_dir, download=not (args.offline or paths.offline_by_env()))
    results = [measure(data, m, device, b, steps=args.steps) for m in models for b in args.batch_sizes]
    print(render(results), end="")
    return 0


def _perf_methods(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    """bench perf --methods: each method's procedure against its FLOP count at the plain step's rate."""
    setup = CellSetup.from_args(args, methods=None if args.methods == ["all"] else args.methods,
                                scenarios=[args.scenario], seeds=[args.seed], argv=argv)
    cells = [c for c in setup.plan() if c.method not in ("Retrain", "Original")]  # training itself / nothing to time
    if not cells:
        raise ConfigError("--methods: nothing to time (Retrain is the training loop itself, Original does nothing)")
    from bench.cell import resolve_device
    from bench.data.catalog import load_dataset
    from bench.perf import measure_methods, plain_flop_rate, render_methods

    data = load_dataset(cells[0].dataset, setup.data_root, cache=setup.cache_dir, download=setup.download)
    rate = plain_flop_rate(data, cells[0].model, resolve_device(cells[0].device), setup.profile.train.batch_size,
                           args.steps)
    print(render_methods(measure_methods(cells, rate), rate), end="")
    return 0


def _report(name: str):
    """A report command, imported only when used (pandas, seaborn, scipy load slowly)."""

    def command(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
        from bench.reports import commands

        return getattr(commands, name)(args, argv)

    return command


def cmd_tune(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from bench.tune.command import cmd_tune as run

    return run(args, argv)


def cmd_imagetext_figures(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from bench.tasks.imagetext.figures import command

    return command(args)


COMMANDS = {"run": cmd_run, "list": cmd_list, "perf": cmd_perf, "tune": cmd_tune, "imagetext-figures": cmd_imagetext_figures, **{
    name: _report(name) for name in ("table", "leaderboard", "compare", "baseline", "embed", "audit")}}


def main(argv: list[str] | None = None, *, rerun: bool = False) -> int:
    """`rerun`: this is the process's own command line (`python -m bench`), which may run itself
    again with pinned numerics (bench/numerics.py); in-process callers (tests) leave it False."""
    logging.basicConfig(format="warning: %(message)s", level=logging.WARNING)
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        args, extra = build_parser().parse_known_args(arguments)
        if extra:  # argparse would blame the top level; the hint should name the command's own --help
            raise ConfigError(f"unrecognized arguments: {' '.join(extra)} (see: python -m bench {args.command} --help)")
        return COMMANDS[args.command](args, arguments if rerun else None)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # e.g. `bench list | head`: the reader left, nothing is wrong
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; run the same command again to resume", file=sys.stderr)
        return 130
