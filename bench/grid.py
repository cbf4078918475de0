"""Planning a grid of cells from a profile, and running it with resume.

Cells are ordered seed-major, then scenario, with Retrain first, so each
Original is trained once per seed and each Retrain once per (scenario, seed).
Each finished cell's record is written at once; a rerun skips finished cells.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from bench.cell import CellSpec, execute_cell
from bench.data.catalog import DATASETS
from bench.errors import ConfigError
from bench.method import METHODS, REFERENCE_METHODS, MethodInfo
from bench.profiles import Profile
from bench.progress import Progress
from bench.records import RecordStore
from bench.splits import parse_scenario
from bench.tasks import CLASSIFY, TASKS



def order_methods(methods: list[MethodInfo]) -> list[MethodInfo]:
    """Retrain always runs (it is every other row's reference and is trained anyway), first."""
    if "Retrain" in METHODS and all(m.name != "Retrain" for m in methods):
        methods = [METHODS.get("Retrain"), *methods]
    first = [m for name in REFERENCE_METHODS for m in methods if m.name == name]
    return first + [m for m in methods if m not in first]


def plan(
    profile: Profile,
    methods: list[MethodInfo],
    *,
    scenarios: list[str] | None = None,
    seeds: list[int] | None = None,
    device: str | None = None,
    data_root: Path,
    cache_dir: Path,
    download: bool = True,
    overrides: dict[str, dict[str, Any]] | None = None,
) -> tuple[list[CellSpec], list[str]]:
    """The cells to run, and notes on combinations left out (a method that does not
    support a scenario kind)."""
    spec = DATASETS.get(profile.dataset)
    model = profile.model or spec.default_model
    TASKS.get(profile.task).check_model(model)
    for name in list(profile.params) + list(overrides or {}):
        METHODS.get(name)  # a typo in a [params.X] table or --set is an error, not a silent no-op
    parsed = [parse_scenario(s, spec.num_classes, profile.forget_class) for s in (scenarios or profile.scenarios)]
    methods = order_methods(methods)
    params = {}
    for m in methods:
        smoke = m.smoke if profile.smoke else {}
        merged = {**smoke, **profile.params.get(m.name, {}), **(overrides or {}).get(m.name, {})}
        params[m.name] = dataclasses.asdict(m.params(merged))  # validates now, before any training
    cells, notes = [], []
    for seed in seeds or profile.seeds:
        for scenario in parsed:
            for m in methods:
                if not m.supports_task(profile.task):
                    notes.append(f"{m.name} does not support the {profile.task} task; skipped")
                    continue
                if scenario.kind not in m.scenarios:
                    notes.append(f"{m.name} does not support {scenario.kind} forgetting; {scenario.name} skipped for it")
                    continue
                cells.append(
                    CellSpec(
                        profile=profile.name, method=m.name, params=params[m.name], dataset=spec.name, model=model,
                        scenario=scenario.name, seed=seed, train=dataclasses.asdict(profile.train),
                        eval=dataclasses.asdict(profile.eval), device=device or profile.device,
                        forget_class=profile.forget_class, data_root=str(data_root), cache_dir=str(cache_dir),
                        download=download, threads=profile.threads, task=profile.task,
                        task_params=dict(profile.task_params),
                    )
                )
    if not cells:
        raise ConfigError("nothing to run: no method supports the chosen scenarios")
    return cells, sorted(set(notes))


class Executor(Protocol):
    def map(self, specs: list[CellSpec]) -> Iterator[tuple[CellSpec, dict]]: ...


class InProcessExecutor:
    """Runs cells one after another in this process (the only executor for now)."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def map(self, specs: list[CellSpec]) -> Iterator[tuple[CellSpec, dict]]:
        for spec in specs:
            yield spec, execute_cell(spec, self.progress)


@dataclass
class GridSummary:
    ran: int = 0
    skipped: int = 0
    failed: list[dict] = field(default_factory=list)


def run_grid(specs: list[CellSpec], store: RecordStore, executor: Executor, progress: Progress,
             force: bool = False) -> GridSummary:
    summary = GridSummary()
    todo = [s for s in specs if force or not store.is_done(s)]
    summary.skipped = len(specs) - len(todo)
    if summary.skipped:
        progress.write(f"{summary.skipped} of {len(specs)} cells already done in {store.root}; skipping them")
    bar = progress.cells(len(todo))
    try:
        for i, (_, record) in enumerate(executor.map(todo), start=1):
            store.write(record)
            summary.ran += 1
            bar.update(1)
            progress.write(f"[{i}/{len(todo)}] {describe(record)}")
            if record["status"] != "ok":
                summary.failed.append(record)
    finally:
        bar.close()
    return summary


def describe(record: dict) -> str:
    c = record["cell"]
    head = f"{c['method']:<10} {c['scenario']:<9} seed {c['seed']}"
    if record["status"] != "ok":
        return f"{head}  FAILED  {record['error']}"
    m, t = record["metrics"], record["timing"]
    if record.get("task", CLASSIFY) != CLASSIFY:
        shown = "  ".join(f"{k} {m[k]:6.2f}" for k in record["gap_metrics"])
        return f"{head}  {shown}  gap {m['avg_gap']:5.2f}  {record['cost']['pflops']:.3g} PFLOPs  {t['unlearn_seconds']:.1f}s"
    return (f"{head}  RA {m['RA']:6.2f}  UA {m['UA']:6.2f}  TA {m['TA']:6.2f}  MIA {m['MIA']:6.2f}  "
            f"gap {m['avg_gap']:5.2f}  {record['cost']['pflops']:.3g} PFLOPs  {t['unlearn_seconds']:.1f}s")
