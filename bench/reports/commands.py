"""CLI entry points of the report commands (parsers live in bench/cli.py).

Each returns the exit status: 0 fine, 1 a regression (compare), and raises a
`UsageError` (one line, exit 2) for anything the user can fix.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Sequence

from bench.cli_setup import CellSetup, writable_file, writable_folder
from bench.errors import ConfigError


def _results_folder(path: str, flag: str = "--results") -> Path:
    """A folder with records/ that the report may write into (checked before pandas loads)."""
    folder = Path(path)
    if not (folder / "records").is_dir():
        raise ConfigError(f"{folder} has no records/ folder; run `python -m bench run --results {folder}` first, "
                          "or pass the folder that holds records/")
    return writable_folder(folder, flag)


def table(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    results_dir = _results_folder(args.results)
    from bench.reports.frame import load_records, records_frame
    from bench.reports.tables import attach_audit, render_csv, render_latex, summary_table, write_summary

    records = load_records(results_dir)
    markdown, csv_path, md_path = write_summary(records, results_dir)
    if args.format == "md":
        print(markdown, end="")
    else:
        summary = attach_audit(summary_table(records_frame(records)), results_dir)
        print(render_csv(summary) if args.format == "csv" else render_latex(summary), end="")
    print(f"tables: {md_path}, {csv_path}, {md_path.with_suffix('.tex')}", file=sys.stderr)
    if args.reference:
        from bench import atomic
        from bench.reports.published import DEFAULT_CSV, load_published, render_comparison

        published = load_published(DEFAULT_CSV if args.reference == "coun" else Path(args.reference))
        text = render_comparison(summary_table(records_frame(records)), published)
        out = results_dir / "summary-published.md"
        atomic.write_text(out, text)
        print(text, end="")
        print(f"comparison with the published results: {out}", file=sys.stderr)
    return 0


def leaderboard(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    root = Path(args.results)
    if not root.is_dir():
        hint = " (results/local/<profile> is where `bench run` writes; run it first)" if root == Path("results/local") else ""
        raise ConfigError(f"--results {root} is not a folder{hint}; pass a results folder or a folder of them, "
                          "e.g. results/local or results/quick")
    from bench.reports.leaderboard import result_folders

    folders = [writable_folder(f, "--results") for f in result_folders(Path(args.results))]
    from bench.reports.leaderboard import write_leaderboard

    for folder in folders:
        md_path, html_path, figures = write_leaderboard(folder, make_plots=not args.no_plots)
        print(f"{folder}: {md_path.name}, {html_path.name}" + (f", {len(figures)} figure files in figures/" if figures else ""))
    return 0


def baseline(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    results_dir = Path(args.results)
    if not (results_dir / "records").is_dir():
        raise ConfigError(f"{results_dir} has no records/ folder; pass the results folder of a finished run")
    out = writable_file(Path(args.out) if args.out else results_dir / "baseline.json", "--out")
    from bench.reports import baseline as bl

    data = bl.from_results(results_dir)
    if not data["entries"]:
        raise ConfigError(f"{results_dir} has no finished cells; run the grid before storing a baseline")
    if data["failed"] and not args.allow_failed:
        names = ", ".join(f["cell_id"] for f in data["failed"][:3])
        raise ConfigError(f"{len(data['failed'])} cell(s) in {results_dir} failed ({names}...); rerun them, "
                          "or pass --allow-failed to store a baseline without them")
    if args.spread_from:
        spread_dir = Path(args.spread_from)
        if not (spread_dir / "records").is_dir():
            raise ConfigError(f"--spread-from {spread_dir} has no records/ folder; pass the results folder of the "
                              "same profile run with other seeds (e.g. --seeds 1,2)")
        lacking = bl.add_spread(data, bl.from_results(spread_dir), str(spread_dir))
        if len(lacking) == len(data["entries"]):
            raise ConfigError(f"--spread-from {spread_dir} has no other seed of any baseline cell; run the same "
                              "profile with other seeds into it")
        if lacking:
            print(f"note: no other seed for {len(lacking)} entries ({', '.join(lacking[:3])}...); their tolerances "
                  "use the floors", file=sys.stderr)
    replaced = out.is_file()
    bl.write(data, out)
    cells = sum(len(e["seeds"]) for e in data["entries"])
    print(f"baseline {'replaced' if replaced else 'written'}: {out} ({len(data['entries'])} method x scenario entries, "
          f"{cells} cells)")
    return 0


def compare(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from bench.reports.tolerances import resolve

    tolerances = resolve(args.tolerance)
    base_path, now_path = Path(args.against), Path(args.results)
    for path, what in ((now_path, "RESULTS"), (base_path, "--against")):
        if not path.exists():
            raise ConfigError(f"{what} {path} does not exist; pass a results folder (with records/) or a baseline file")
        if path.is_dir() and not (path / "records").is_dir():
            raise ConfigError(f"{what} {path} has no records/ folder; pass a results folder or a baseline file")
    from bench.reports import baseline as bl
    from bench.reports import compare as cmp

    baseline_side = bl.load_side(base_path)
    now_side = bl.load_side(now_path)
    if not now_side["entries"] and not now_side["failed"]:
        raise ConfigError(f"{now_path} holds no records; run the grid first")
    mismatch = cmp.numerics_mismatch(now_side, baseline_side)
    if mismatch:
        raise ConfigError(mismatch)
    result = cmp.compare(now_side, baseline_side, tolerances, skip_timing=args.skip_timing)
    print(cmp.render(result, str(now_path), f"{base_path} (created {baseline_side.get('created', '?')})"), end="")
    return 0 if result.ok else 1


def embed(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from bench import paths

    if not (math.isfinite(args.curvature) and args.curvature > 0):
        raise ConfigError("--curvature must be a finite number > 0")
    setup = CellSetup.from_args(args, methods=[args.method], scenarios=[args.scenario], seeds=[args.seed], argv=argv)
    setup.start_torch()  # before bench.reports.embeddings imports torch: the profile may pin its numerics
    from bench.reports.embeddings import VIEWS

    views = args.view or list(VIEWS)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ConfigError(f"--view takes {', '.join(VIEWS)}; got {', '.join(unknown)}")
    out = writable_folder(Path(args.out) if args.out else paths.local_results(setup.profile.name) / "figures", "--out")
    cells = setup.plan()
    spec = next(c for c in cells if c.method == args.method)  # plan() also schedules Retrain, the reference
    from bench.data.catalog import DATASETS
    from bench.reports.embeddings import embed as draw

    written = draw(spec, out, DATASETS.get(spec.dataset).classes, views, args.max_points, args.curvature)
    for path in written:
        print(path)
    return 0


def audit(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    import time

    from bench.audit.report import render_markdown, write_audit

    if args.plot_methods < 1:
        raise ConfigError("--plot-methods must be at least 1")
    start = time.perf_counter()
    table, written = write_audit(Path(args.results), variance=args.variance, plot_methods=args.plot_methods)
    print(render_markdown(table), end="")
    print(f"audit ({time.perf_counter() - start:.1f} s): {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
