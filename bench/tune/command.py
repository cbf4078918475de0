"""`python -m bench tune`: run the studies, report them, and (with --write) store the best values
in the profile's tuned file, which `bench run` then applies."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path
from typing import Sequence

from bench import paths
from bench.errors import ConfigError
from bench.names import REFERENCE_METHODS, SCENARIO_KINDS


def cmd_tune(args: argparse.Namespace, argv: Sequence[str] | None = None) -> int:
    from bench import numerics, profiles

    profile = profiles.load(args.profile)
    numerics.apply(profile.numerics, argv)  # tuned values measured with the kernels `bench run` uses

    import torch

    from bench.data.catalog import DATASETS, load_dataset
    from bench.splits import parse_scenario
    from bench.grid import InProcessExecutor
    from bench.progress import Progress
    from bench.tune import report, study as st, tuned

    overrides = {k: v for k, v in (("trials", args.trials), ("budget_epochs", args.budget_epochs)) if v is not None}
    if overrides:
        tune_cfg = profiles.build_params(profiles.TuneConfig, {**dataclasses.asdict(profile.tune), **overrides}, "--trials/--budget-epochs")
        profile = dataclasses.replace(profile, tune=tune_cfg)
    if profile.threads:
        torch.set_num_threads(profile.threads)
    methods = tunable_methods(profile.task, None if args.all or not args.methods else args.methods)
    if not methods:
        raise ConfigError("nothing to tune: the chosen methods declare no search space")
    kinds = args.kinds or list(SCENARIO_KINDS)
    for k in kinds:
        if k not in SCENARIO_KINDS:
            raise ConfigError(f"--kinds takes {', '.join(SCENARIO_KINDS)}, got {k!r}")
    num_classes = DATASETS.get(profile.dataset).num_classes
    profile_kinds = {parse_scenario(x, num_classes, profile.forget_class).kind for x in profile.scenarios}
    data_root, cache_dir = paths.data_root(args.data_root), paths.cache_dir(args.cache_dir)
    download = profile.download and not args.offline and not paths.offline_by_env()
    load_dataset(profile.dataset, data_root, cache=cache_dir, download=download)  # missing data: one line, now

    progress = Progress(enabled=False if args.no_progress else None)
    executor = InProcessExecutor(progress)
    rows, entries = [], {}
    for method in methods:
        for kind in kinds:
            if kind not in method.scenarios:
                continue
            if kind not in profile_kinds:
                continue
            s = st.setup(profile, method, kind, device=args.device, data_root=data_root, cache_dir=cache_dir,
                         download=download)
            start = time.perf_counter()
            if not args.report_only:
                study = st.run_study(s, executor, fresh=args.fresh, trials=profile.tune.trials, say=progress.write)
            else:
                study = st.open_study(s)
            main = next((p.name for p in method.param_specs() if p.main and p.name in s.space), next(iter(s.space)))
            row = report.summarize(study, main)
            rows.append(row)
            progress.write(f"{s.name}: {row['complete']} complete + {row['pruned']} pruned trials, best "
                           f"{report._fmt(row['best'])}, {row['seconds']:.0f}s in trials ({time.perf_counter() - start:.0f}s now)")
            if args.write and row["best"] is not None:
                entries.setdefault(method.name, {})[kind] = st.best_entry(s, study)
    out = Path(args.out) if args.out else paths.local_results(profile.name) / "tune"
    cap = profile.tune.budget_epochs
    header = (f"# Tuning report: profile {profile.name}\n\nOne Optuna study per method and scenario kind: "
              f"{profile.tune.trials} trials each (TPE, seeded; median pruner between cells), compute cap "
              f"{cap:g} epoch-equivalents per cell, tuning seeds {profile.tune.seed}..{profile.tune.seed + profile.tune.repeats - 1}, "
              f"{profile.tune.holdout:g} of the training set held out as the validation slice (D_t is never read). "
              f"Objective: {st.OBJECTIVE}.")
    files = report.write_report(rows, out, header)
    print(report.markdown(rows, ""), end="")
    print(f"report: {', '.join(map(str, files))}", file=sys.stderr)
    if args.write:
        if profile.tuned_path is None:
            raise ConfigError(f"profile {profile.name} names no tuned file; add  tuned = \"tuned/{profile.name}.toml\"  to it")
        merged = tuned.load(profile.tuned_path)
        for method, kinds_ in entries.items():
            merged.setdefault(method, {}).update(kinds_)
        tuned.write(profile.tuned_path, merged)
        print(f"tuned values: {profile.tuned_path} ({sum(len(v) for v in entries.values())} studies written)", file=sys.stderr)
    return 0


def tunable_methods(task: str, names: list[str] | None) -> list:
    """The methods a study is run for: those of `task` that declare a search space, neither
    reference (Retrain, Original) nor, unless named, a preset (a fixed published setting)."""
    from bench.method import resolve_methods
    from bench.plugins import load_all_methods

    load_all_methods()
    return [m for m in resolve_methods(names) if m.name not in REFERENCE_METHODS and m.supports_task(task)
            and any(s.search for s in m.param_specs()) and (names or m.preset_of is None)]


def add_parser(sub) -> None:
    from bench.cli_setup import csv as _csv

    tune = sub.add_parser("tune", help="equal-budget hyperparameter search (Optuna) on a validation holdout; "
                                       "--write stores the best values as the profile's tuned settings")
    tune.add_argument("--profile", default="quick", help="profile name or .toml path (default: quick); its [tune] table sets the budget")
    which = tune.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every method with a search space (default)")
    which.add_argument("--methods", type=_csv, help="comma-separated method names (globs allowed)")
    tune.add_argument("--kinds", type=_csv, help="scenario kinds to tune: random,class (default: both; "
                                                 "each uses the profile's scenarios of that kind)")
    tune.add_argument("--trials", type=int, help="trials per study (default: the profile's [tune] trials)")
    tune.add_argument("--budget-epochs", type=float, help="compute cap per cell in epoch-equivalents (default: the profile's)")
    tune.add_argument("--write", action="store_true", help="write the best values into the profile's tuned file")
    tune.add_argument("--report-only", action="store_true", help="report the stored studies without running trials")
    tune.add_argument("--fresh", action="store_true", help="delete the stored studies first and start over")
    tune.add_argument("--out", help="report folder (default: results/local/<profile>/tune)")
    tune.add_argument("--device", help="auto, cpu or cuda (default: the profile's)")
    tune.add_argument("--data-root", help="where datasets are looked for")
    tune.add_argument("--cache-dir", help="decoded tensors, checkpoints and the studies (<cache>/tune/<profile>.db)")
    tune.add_argument("--offline", action="store_true", help="never try to download data")
    tune.add_argument("--no-progress", action="store_true", help="no progress bars")
