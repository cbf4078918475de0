"""Planning a grid of cells from a profile, and running it with resume.

Cells are ordered seed-major, then scenario, with Retrain first. An executor
(bench.executors) runs them as a DAG: each Original once per seed and each Retrain
once per (scenario, seed), then the cells. Each finished cell's record is written
at once; a rerun skips finished cells. A cell is claimed (a file lock beside the
records) while it runs, so two grids on one results folder never run it twice.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Protocol

from bench.cell import CellSpec
from bench.data.catalog import DATASETS
from bench.errors import ConfigError
from bench.locks import FileLock
from bench.method import METHODS, REFERENCE_METHODS, MethodInfo
from bench.profiles import MIN_AUDIT_REPLICAS, Profile, check_replicas
from bench.progress import Progress
from bench.records import RecordStore
from bench.splits import parse_scenario
from bench.tasks import TASKS
from bench.tune import tuned



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
    replicas: int | None = None,
) -> tuple[list[CellSpec], list[str]]:
    """The cells to run, and notes on combinations left out (a method that does not
    support a scenario kind).

    With K = `replicas` (else the profile's [audit] replicas) >= 3, each (scenario, seed) of
    the audit's scenarios also gets replicas 1..K-1 of every cell: Retrain with other
    seeds on the same split, each method with other method seeds from the same Original.
    They are ordinary cells (the replica index is part of their identity and id)."""
    spec = DATASETS.get(profile.dataset)
    task = TASKS.get(profile.task)
    if task.models:  # the task's own models: the profile's one, or every one
        if profile.model is not None and profile.model not in task.models:
            raise ConfigError(f"profile {profile.name}: the {task.name} task has models {', '.join(task.models)}; "
                              f"got {profile.model!r}")
        models = [profile.model] if profile.model else list(task.models)
    else:
        models = [profile.model or spec.default_model]
        task.check_model(models[0])
    for name in list(profile.params) + list(overrides or {}):
        METHODS.get(name)  # a typo in a [params.X] table or --set is an error, not a silent no-op
    parsed = [parse_scenario(s, spec.num_classes, profile.forget_class) for s in (scenarios or profile.scenarios)]
    methods = order_methods(methods)
    tuned_entries = tuned.load(profile.tuned_path)
    params, provenance = {}, {}
    for m in methods:
        for kind in {s.kind for s in parsed}:
            params[m.name, kind], provenance[m.name, kind] = method_params(profile, m, kind, tuned_entries, overrides)
    k = profile.audit.replicas if replicas is None else replicas
    check_replicas(k, "--replicas" if replicas is not None else f"profile {profile.name} [audit]")
    audited = {parse_scenario(s, spec.num_classes, profile.forget_class).name
               for s in (profile.audit.scenarios or [p.name for p in parsed])}
    cells, notes = [], []
    other_task = [m.name for m in methods if not m.supports_task(profile.task)]
    if other_task:
        notes.append(f"not for the {profile.task} task, skipped: {', '.join(other_task)}")
    methods = [m for m in methods if m.supports_task(profile.task)]
    for seed in seeds or profile.seeds:
        for scenario, model in ((s, name) for s in parsed for name in models):
            for replica in range(k if k >= MIN_AUDIT_REPLICAS and scenario.name in audited else 1):
                for m in methods:
                    if scenario.kind not in m.scenarios:
                        if not replica:
                            notes.append(f"{m.name} does not support {scenario.kind} forgetting; {scenario.name} skipped for it")
                        continue
                    if model not in getattr(m.cls, "models", (model,)):
                        if not replica:
                            notes.append(f"{m.name} runs only on model {', '.join(m.cls.models)}; skipped on {model}")
                        continue
                    cells.append(
                        CellSpec(
                            profile=profile.name, method=m.name, params=params[m.name, scenario.kind], dataset=spec.name,
                            model=model, scenario=scenario.name, seed=seed, train=dataclasses.asdict(profile.train),
                            eval=dataclasses.asdict(profile.eval), device=device or profile.device,
                            forget_class=profile.forget_class, data_root=str(data_root), cache_dir=str(cache_dir),
                            download=download, threads=profile.threads, task=profile.task,
                            task_params=dict(profile.task_params), tuned=provenance[m.name, scenario.kind],
                            replica=replica, outputs_sample=profile.audit.sample,
                            outputs_forget_sample=profile.audit.forget_sample,
                        )
                    )
    if not cells:
        raise ConfigError(f"nothing to run: no chosen method supports the {profile.task} task with the chosen scenarios "
                          "and models (`bench list` shows what each method supports)")
    return cells, sorted(set(notes))


def method_params(profile: Profile, method: MethodInfo, kind: str, tuned_entries: dict | None = None,
                  overrides: dict[str, dict[str, Any]] | None = None) -> tuple[dict[str, Any], dict | None]:
    """A method's hyperparameters for one scenario kind, validated, and the provenance of tuned values used.

    Layers, later wins: the method's defaults, its smoke settings (smoke profiles), the profile's
    [params.METHOD] (the base a study starts from), the values `bench tune` chose for this kind
    (the profile's `tuned` file), `--set`."""
    base = {**(method.smoke if profile.smoke else {}), **profile.params.get(method.name, {})}
    entry = (tuned_entries or {}).get(method.name, {}).get(kind)
    chosen = dict(entry["params"]) if entry else {}
    manual = (overrides or {}).get(method.name, {})
    merged = {**base, **chosen, **manual}
    params = dataclasses.asdict(method.params(merged))  # validates now, before any training
    if not entry:
        return params, None
    info = tuned.provenance(entry)
    overridden = sorted(set(chosen) & set(manual))
    if overridden:
        info["overridden"] = overridden
    return params, info


class Executor(Protocol):
    def map(self, specs: list[CellSpec], claims: "CellClaims | None" = None) -> Iterator[tuple[CellSpec, dict | None]]:
        """(spec, record) as cells finish; (spec, None) for a cell another grid finished meanwhile."""


def InProcessExecutor(progress: Progress):
    """Every job in this process, one after another."""
    from bench.executors.inprocess import InProcessBackend
    from bench.executors.scheduler import DagExecutor

    return DagExecutor(InProcessBackend(progress), progress)


class CellClaims:
    """Locks on the cells this grid is running, under <results>/records/.locks/ (see bench.locks)."""

    def __init__(self, store: RecordStore, force: bool):
        self.store = store
        self.force = force
        self.held: dict[str, FileLock] = {}

    def claim(self, spec: CellSpec) -> str:
        if spec.cell_id in self.held:  # a retry of a cell this grid already holds (its worker died)
            return "run"
        lock = FileLock(self.store.records_dir / ".locks" / f"{spec.cell_id}.lock")
        if not lock.try_acquire():
            return "busy"
        if not self.force and self.store.is_done(spec):  # another grid finished it since we planned
            lock.release()
            return "done"
        self.held[spec.cell_id] = lock
        return "run"

    def release(self, spec: CellSpec) -> None:
        lock = self.held.pop(spec.cell_id, None)
        if lock is not None:
            lock.release()

    def release_all(self) -> None:
        for lock in self.held.values():
            lock.release()
        self.held.clear()


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
    claims = CellClaims(store, force)
    try:
        for i, (spec, record) in enumerate(executor.map(todo, claims), start=1):
            bar.update(1)
            if record is None:
                summary.skipped += 1
                progress.write(f"[{i}/{len(todo)}] {spec.cell_id}: finished meanwhile by another run")
                continue
            store.write(record)
            claims.release(spec)
            summary.ran += 1
            progress.write(f"[{i}/{len(todo)}] {describe(record)}")
            if record["status"] != "ok":
                summary.failed.append(record)
    finally:
        bar.close()
        claims.release_all()
    return summary


def describe(record: dict) -> str:
    c = record["cell"]
    head = f"{c['method']:<10} {c['scenario']:<9} seed {c['seed']}" + (f" rep {c['replica']}" if c.get("replica") else "")
    if record["status"] != "ok":
        return f"{head}  FAILED  {record['error']}"
    m, t = record["metrics"], record["timing"]
    if "RA" not in m:  # another task's metrics: its gap metrics, by name
        shown = "  ".join(f"{k} {m[k]:6.2f}" for k in record.get("gap_metrics", []))
        return (f"{c['method']:<10} {c['model']:<5} {c['scenario']:<9} seed {c['seed']}  {shown}  gap {m['avg_gap']:5.2f}  "
                f"{record['cost']['pflops']:.3g} PFLOPs  {t['unlearn_seconds']:.1f}s")
    return (f"{head}  RA {m['RA']:6.2f}  UA {m['UA']:6.2f}  TA {m['TA']:6.2f}  MIA {m['MIA']:6.2f}  "
            f"gap {m['avg_gap']:5.2f}  {record['cost']['pflops']:.3g} PFLOPs  {t['unlearn_seconds']:.1f}s")
