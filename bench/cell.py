"""One cell of the grid: (method, dataset, model, scenario, seed) -> one record.

`CellSpec` is plain data (JSON-serialisable): everything a cell needs, so a cell
is a pure function of its spec and can be shipped to any executor. `run_cell`
does the work; `execute_cell` never raises for a failing method, it returns a
record with status "failed" and the error. What a worker keeps between cells
(datasets, device sets, reference models and metrics) is the `WorkerCache` it
passes in; without one a cell starts from nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bench.checkpoints import CheckpointStore
from bench.engine import Engine, TrainRecipe
from bench.environment import code_fingerprint, code_version, environment
from bench.errors import CellFailure, ConfigError
from bench.flops import CostModel, SampleCounter, cost_model
from bench.method import METHODS, ReportedCost, UnlearnContext
from bench.metrics import EVAL_PRECISION, MIA_SVC, EvalSets, avg_gap, evaluate, hold_out_nonmembers
from bench.outputs import OUTPUT_SAMPLE, collect_outputs
from bench.progress import SILENT, Progress
from bench.reference import ReferenceModels, counts_from_meta, device_sets
from bench.splits import Split, derive_seed, draw_split, parse_scenario
from bench.tasks import CLASSIFY, TASKS
from bench.tune.budget import BudgetGuard
from bench.tune.holdout import Holdout
from bench.worker_cache import WorkerCache

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class CellSpec:
    profile: str
    method: str
    params: dict[str, Any]
    dataset: str
    model: str
    scenario: str
    seed: int
    train: dict[str, Any]
    eval: dict[str, Any]
    device: str
    forget_class: int = 9
    task: str = CLASSIFY  # the kind of task (bench/tasks); its settings, validated, in task_params
    task_params: dict[str, Any] = field(default_factory=dict)
    replica: int = 0  # audit replicas: k > 0 is another Retrain seed / method seed on the same split and Original
    outputs_sample: int = OUTPUT_SAMPLE  # size of the fixed D_r and D_t samples whose logits are stored
    outputs_forget_sample: int = 0  # size of the fixed D_f sample whose logits are stored (0: all of D_f)
    # where things live and how to get them: not part of the cell's identity
    data_root: str = ""
    cache_dir: str = ""
    download: bool = True
    threads: int | None = None
    # tuning cells only (bench tune): {"holdout": fraction, "holdout_seed": k, "budget_pflops": cap}
    tuning: dict[str, Any] | None = None
    # tuned hyperparameters only: where they came from (study, budget, best value); not part of the identity
    tuned: dict[str, Any] | None = None
    run_id: str = ""  # the grid run executing it (set by the executor; see ReferenceModels.run_id)

    @property
    def cell_id(self) -> str:
        base = f"{self.method}__{self.dataset}__{self.model}__{self.scenario}__seed{self.seed}"
        return f"{base}__rep{self.replica}" if self.replica else base

    def identity(self) -> dict[str, Any]:
        """What determines the cell's result (paths and thread counts do not). The tuning and
        audit fields enter only when set, so the hashes of ordinary cells do not change."""
        keep = ("method", "params", "dataset", "model", "scenario", "seed", "train", "eval", "device", "forget_class",
                "task", "task_params")
        identity = {k: getattr(self, k) for k in keep}
        if self.tuning is not None:
            identity["tuning"] = self.tuning
        identity["code"] = code_fingerprint(self.method, self.task)[0]  # other code, another cell
        if self.replica:
            identity["replica"] = self.replica
        if self.outputs_sample != OUTPUT_SAMPLE:
            identity["outputs_sample"] = self.outputs_sample
        if self.outputs_forget_sample:
            identity["outputs_forget_sample"] = self.outputs_forget_sample
        return identity

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: no CUDA device is visible here; use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu or cuda") from None


def code_record(spec: CellSpec) -> dict[str, Any]:
    """The commit, and the fingerprint of the source files that determine the cell (in its identity)."""
    fingerprint, files = code_fingerprint(spec.method, spec.task)
    return {**code_version(), "fingerprint": fingerprint, "fingerprint_files": list(files)}


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def record_envelope(spec: CellSpec) -> dict[str, Any]:
    """The fields that identify a cell's record, shared by every task's records."""
    return {
        "schema": SCHEMA_VERSION,
        "cell_id": spec.cell_id,
        "task": spec.task,
        "gap_metrics": list(TASKS.get(spec.task).gap_metrics),
        "cell": {"method": spec.method, "dataset": spec.dataset, "model": spec.model,
                 "scenario": spec.scenario, "seed": spec.seed, "profile": spec.profile,
                 **({"replica": spec.replica} if spec.replica else {})},
        "config": spec.identity(),
        "config_hash": spec.config_hash,
    }


def _all_finite(model: torch.nn.Module) -> bool:
    flags = [torch.isfinite(p).all() for p in model.parameters()]
    return bool(torch.stack(flags).all().item())


@dataclass
class PreparedCell:
    """A cell ready to run: the method's context on the Original weights, and what to measure with."""

    spec: CellSpec
    engine: Engine
    refs: ReferenceModels
    split: Split
    sets: EvalSets
    params: Any
    ctx: UnlearnContext
    counter: SampleCounter
    cost_model: CostModel
    holdout_detail: dict | None = None

    @property
    def model(self) -> torch.nn.Module:
        return self.ctx.model


def reference_models(spec: CellSpec, cache: WorkerCache, progress: Progress = SILENT) -> ReferenceModels:
    """The Original/Retrain provider for `spec`'s dataset, model and recipe, on `cache`."""
    device = resolve_device(spec.device)
    data = cache.dataset(spec.dataset, Path(spec.data_root), cache=Path(spec.cache_dir), download=spec.download)
    if spec.tuning is not None:  # the test set is dropped here: a tuning cell measures on a validation slice
        data = Holdout(spec.tuning["holdout"], spec.tuning["holdout_seed"]).apply(data)
    ds = data.spec
    engine = Engine(device, ds.mean, ds.std, ds.augment)
    return ReferenceModels(engine, data, spec.model, TrainRecipe(**spec.train), CheckpointStore(Path(spec.cache_dir)),
                           progress, cache=cache, run_id=spec.run_id)


def prepare_cell(spec: CellSpec, progress: Progress = SILENT, cache: WorkerCache | None = None) -> PreparedCell:
    """Load data, draw the split, get the Original model (trained or cached) and build the context."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    cache = cache if cache is not None else WorkerCache()
    refs = reference_models(spec, cache, progress)
    data, engine, device = refs.data, refs.engine, refs.engine.device
    ds = data.spec
    scenario = parse_scenario(spec.scenario, ds.num_classes, spec.forget_class)
    info = METHODS.get(spec.method)
    if scenario.kind not in info.scenarios:
        raise ConfigError(f"method {spec.method} does not support {scenario.kind} forgetting")
    params = info.params(spec.params)
    split = draw_split(scenario, data.train_y, spec.seed)

    train_all, test_all = device_sets(data, device, cache)
    retain = train_all.take(split.retain.to(device), name="retain")
    forget = train_all.take(split.forget.to(device), name="forget")
    eval_test, pool = hold_out_nonmembers(test_all, spec.eval.get("nonmember_pool", "none"), spec.seed)
    sets = EvalSets.build(retain, forget, eval_test, scenario.forget_class, spec.eval["classwise_test"], pool)

    original_state, _ = refs.original(spec.seed)
    model = refs.load(original_state)
    model.train()
    counter = SampleCounter()
    counter.attach(model)

    def retrain_provider() -> tuple[dict, ReportedCost]:
        state, meta = refs.retrain(split, replica=spec.replica)
        return state, ReportedCost(counts_from_meta(meta), meta["seconds"], meta["device"], meta["cached"],
                                   meta.get("peak_memory_mb"), meta.get("step"))

    ctx = UnlearnContext(
        engine=engine, model=model, retain=retain, forget=forget, test=eval_test, nonmembers=pool, scenario=scenario,
        num_classes=ds.num_classes, seed=method_seed(spec), counter=counter,
        make_original=lambda: refs.load(original_state), retrain=retrain_provider, progress=progress,
        label=f"{spec.method} {spec.scenario} s{spec.seed}" + (f" rep{spec.replica}" if spec.replica else ""),
    )
    costs = cost_model(spec.model, ds.channels, ds.num_classes, ds.image_size)
    holdout_detail = None
    if spec.tuning is not None:
        full = len(data.train_y) + len(data.test_y)
        holdout_detail = Holdout(spec.tuning["holdout"], spec.tuning["holdout_seed"]).describe(full)
    return PreparedCell(spec, engine, refs, split, sets, params, ctx, counter, costs, holdout_detail)


def method_seed(spec: CellSpec) -> int:
    """The method's randomness: replica k > 0 draws another seed from the same Original."""
    if spec.replica:
        return derive_seed(spec.seed, "method", spec.method, "replica", spec.replica)
    return derive_seed(spec.seed, "method", spec.method)


def run_cell(spec: CellSpec, progress: Progress = SILENT, cache: WorkerCache | None = None) -> dict[str, Any]:
    """Run one cell of any task and return its record (status "ok"). Raises on failure."""
    run = TASKS.get(spec.task).run_function()
    if spec.task == CLASSIFY:  # the classifier task keeps what it reuses in the worker's cache
        return run(spec, progress, cache)
    return run(spec, progress)


def run_classifier_cell(spec: CellSpec, progress: Progress = SILENT, cache: WorkerCache | None = None) -> dict[str, Any]:
    """The `classify` task's cell: unlearn a supervised classifier and measure RA, UA, TA, MIA."""
    cell = prepare_cell(spec, progress, cache)
    engine, ctx, eval_bs = cell.engine, cell.ctx, spec.eval["batch_size"]
    reference = _retrain_metrics(cell.refs, cell.split, cell.sets, eval_bs, spec)

    guard = None
    if spec.tuning is not None and spec.tuning.get("budget_pflops"):
        budget = BudgetGuard(cell.counter, cell.cost_model, spec.tuning["budget_pflops"])
        guard = budget.attach(cell.model)
        ctx.before_replay.append(budget.check)
    seconds, peak_memory_mb = engine.timed(lambda: cell.params.run(ctx))
    cell.counter.detach()
    if guard is not None:
        guard.remove()

    if ctx.saw_nonfinite() or not _all_finite(cell.model):
        raise CellFailure("diverged: a loss or a weight became NaN/inf")
    eval_start = time.perf_counter()
    metrics = evaluate(engine, cell.model, cell.sets, eval_bs)
    eval_seconds = time.perf_counter() - eval_start
    if any(not math.isfinite(metrics[k]) for k in ("RA", "UA", "TA", "MIA")):
        raise CellFailure(f"metrics are not finite: {metrics}")
    metrics["avg_gap"] = avg_gap(metrics, reference)
    outputs = collect_outputs(engine, cell.model, cell.sets, spec.outputs_sample,
                              derive_seed(spec.seed, "audit-sample", spec.scenario), eval_bs,
                              forget_sample=spec.outputs_forget_sample)

    reported = ctx.reported_cost or ReportedCost(cell.counter.counts, seconds, engine.device_name(), False, peak_memory_mb,
                                                 ctx.step_stats())
    return {
        **record_envelope(spec),
        "status": "ok",
        "metrics": metrics,
        "retrain_reference": reference,
        "split": cell.split.describe(),
        "params": dataclasses.asdict(cell.params),
        "method_info": ctx.info,
        "cost": {
            "samples": reported.counts.as_dict(),
            "forward_macs_per_sample": cell.cost_model.forward_macs,
            "second_order_flops_per_sample": cell.cost_model.second_order_per_sample,
            "pflops": cell.cost_model.pflops(reported.counts),
            "evaluation_pflops": cell.cost_model.evaluation_pflops(reported.counts),
            "from_cache": reported.cached,
        },
        "timing": {"unlearn_seconds": reported.seconds, "eval_seconds": eval_seconds, "device": reported.device,
                   "peak_memory_mb": reported.peak_memory_mb, "train_step": reported.step},
        "evaluation": {"precision": EVAL_PRECISION, "mia_svc": MIA_SVC, **cell.sets.describe()},
        "environment": environment(engine.device),
        "code": code_record(spec),
        "created": now_iso(),
        **({"tuned": spec.tuned} if spec.tuned else {}),
        **({"tuning": {**spec.tuning, "holdout_detail": cell.holdout_detail}} if spec.tuning else {}),
        "_outputs": outputs,  # written beside the record by RecordStore.write, which replaces this by its hash
    }


def _retrain_metrics(refs: ReferenceModels, split: Split, sets: EvalSets, eval_bs: int, spec: CellSpec) -> dict:
    """Retrain's metrics on this split (trained or loaded once, evaluated once per worker)."""
    key = json.dumps([spec.dataset, refs.data.fingerprint, spec.model, spec.train, spec.eval, split.forget_hash, spec.seed,
                      str(refs.engine.device)])
    held = refs.cache.reference_metrics
    if key not in held:
        state, _ = refs.retrain(split)
        held[key] = evaluate(refs.engine, refs.load(state), sets, eval_bs)
    return dict(held[key])


def execute_cell(spec: CellSpec, progress: Progress = SILENT, cache: WorkerCache | None = None) -> dict[str, Any]:
    """`run_cell`, with any failure turned into a "failed" record (KeyboardInterrupt still stops)."""
    try:
        return run_cell(spec, progress, cache)
    except Exception as exc:  # the grid goes on; the record says what went wrong
        return failed_record(spec, f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=-8))


def failed_record(spec: CellSpec, error: str, trace: str = "") -> dict[str, Any]:
    """The record of a cell that did not finish: what went wrong, in one line, and where."""
    return {
        **record_envelope(spec),
        "status": "failed",
        "error": error.splitlines()[0] if error else "failed",
        "traceback": trace,
        "environment": environment(torch.device("cpu")),
        "code": code_record(spec),
        "created": now_iso(),
    }
