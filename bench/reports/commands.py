"""CLI entry points of the report commands (parsers live in bench/cli.py).

Each returns the exit status: 0 fine, 1 a regression (compare), and raises a
`UsageError` (one line, exit 2) for anything the user can fix.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.errors import ConfigError


def table(args: argparse.Namespace) -> int:
    from bench.reports.frame import load_records, records_frame
    from bench.reports.tables import attach_audit, render_csv, render_latex, summary_table, write_summary

    results_dir = Path(args.results)
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


def leaderboard(args: argparse.Namespace) -> int:
    from bench.reports.leaderboard import result_folders, write_leaderboard

    for folder in result_folders(Path(args.results)):
        md_path, html_path, figures = write_leaderboard(folder, make_plots=not args.no_plots)
        print(f"{folder}: {md_path.name}, {html_path.name}" + (f", {len(figures)} figure files in figures/" if figures else ""))
    return 0


def baseline(args: argparse.Namespace) -> int:
    from bench.reports import baseline as bl

    results_dir = Path(args.results)
    data = bl.from_results(results_dir)
    if not data["entries"]:
        raise ConfigError(f"{results_dir} has no finished cells; run the grid before storing a baseline")
    if data["failed"] and not args.allow_failed:
        names = ", ".join(f["cell_id"] for f in data["failed"][:3])
        raise ConfigError(f"{len(data['failed'])} cell(s) in {results_dir} failed ({names}...); rerun them, "
                          "or pass --allow-failed to store a baseline without them")
    out = Path(args.out) if args.out else results_dir / "baseline.json"
    replaced = out.is_file()
    bl.write(data, out)
    cells = sum(len(e["seeds"]) for e in data["entries"])
    print(f"baseline {'replaced' if replaced else 'written'}: {out} ({len(data['entries'])} method x scenario entries, "
          f"{cells} cells)")
    return 0


def compare(args: argparse.Namespace) -> int:
    from bench.reports import baseline as bl
    from bench.reports import compare as cmp
    from bench.reports.tolerances import resolve

    tolerances = resolve(args.tolerance)
    base_path, now_path = Path(args.against), Path(args.results)
    if not now_path.exists():
        raise ConfigError(f"{now_path} does not exist; pass a results folder (with records/) or a baseline file")
    baseline_side = bl.load_side(base_path)
    now_side = bl.load_side(now_path)
    if not now_side["entries"] and not now_side["failed"]:
        raise ConfigError(f"{now_path} holds no records; run the grid first")
    result = cmp.compare(now_side, baseline_side, tolerances, skip_timing=args.skip_timing)
    print(cmp.render(result, str(now_path), f"{base_path} (created {baseline_side.get('created', '?')})"), end="")
    return 0 if result.ok else 1


def embed(args: argparse.Namespace) -> int:
    from bench import paths, profiles
    from bench.cell import resolve_device
    from bench.data.catalog import DATASETS
    from bench.grid import plan
    from bench.method import METHODS
    from bench.reports.embeddings import VIEWS
    from bench.reports.embeddings import embed as draw

    profile = profiles.load(args.profile)
    views = args.view or list(VIEWS)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise ConfigError(f"--view takes {', '.join(VIEWS)}; got {', '.join(unknown)}")
    if args.max_points < 10:
        raise ConfigError("--max-points must be at least 10")
    if not args.curvature > 0:
        raise ConfigError("--curvature must be > 0")
    if profile.threads:
        import torch

        torch.set_num_threads(profile.threads)
    download = profile.download and not args.offline and not paths.offline_by_env()
    from bench.cli import _overrides

    cells, _ = plan(profile, [METHODS.get(args.method)], scenarios=[args.scenario], seeds=[args.seed], device=args.device,
                    data_root=paths.data_root(args.data_root), cache_dir=paths.cache_dir(args.cache_dir),
                    download=download, overrides=_overrides(args.overrides))
    spec = next(c for c in cells if c.method == args.method)  # plan() also schedules Retrain, the reference
    resolve_device(spec.device)
    out = Path(args.out) if args.out else paths.local_results(profile.name) / "figures"
    written = draw(spec, out, DATASETS.get(spec.dataset).classes, views, args.max_points, args.curvature)
    for path in written:
        print(path)
    return 0


def audit(args: argparse.Namespace) -> int:
    import time

    from bench.audit.report import render_markdown, write_audit

    if args.plot_methods < 1:
        raise ConfigError("--plot-methods must be at least 1")
    start = time.perf_counter()
    table, written = write_audit(Path(args.results), variance=args.variance, plot_methods=args.plot_methods)
    print(render_markdown(table), end="")
    print(f"audit ({time.perf_counter() - start:.1f} s): {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0
