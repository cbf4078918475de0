"""The imagetext task's cell: train (or load) the Original dual encoder, unlearn the
concepts with the cell's method, measure zero-shot accuracy and confusion against Retrain."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bench.cell import _all_finite, now_iso, record_envelope, resolve_device
from bench.checkpoints import CheckpointStore, key_hash
from bench.data.catalog import load_dataset
from bench.data.device_data import DeviceData
from bench.engine import Engine, TrainRecipe
from bench.environment import code_version, environment
from bench.errors import CellFailure, ConfigError
from bench.method import METHODS
from bench.metrics import EVAL_PRECISION
from bench.progress import SILENT, Progress
from bench.reference import device_sets
from bench.splits import derive_seed, index_hash, parse_scenario
from bench.tasks import TASKS
from bench.tasks.imagetext import GAP_METRICS, ImageTextParams
from bench.tasks.imagetext.captions import EOS, CaptionBank, build_bank
from bench.tasks.imagetext.context import ImageTextContext, RetrainCost
from bench.tasks.imagetext.counting import DualCost, TowerCounter, dual_cost
from bench.tasks.imagetext.evaluate import evaluate, row_distance
from bench.tasks.imagetext.models import ImageTextModel
from bench.tasks.imagetext.train import train_contrastive

TRAINING_VERSION = 1  # bump when Original/Retrain training changes: old checkpoints stop matching
SEQ_LEN = 16
_memory: dict[str, tuple[dict, dict]] = {}  # trained states of this process, by checkpoint key
_reference: dict[str, tuple[dict, dict]] = {}  # Retrain's metrics and confusion, by split


def task_params(spec) -> ImageTextParams:
    return ImageTextParams(**spec.task_params)


def forgotten_classes(scenario_class: int, params: ImageTextParams, classes: tuple[str, ...]) -> tuple[int, ...]:
    """The scenario's class, then `more_concepts` (skipping it), `concepts` in all."""
    more = [c.strip() for c in params.more_concepts.split(",") if c.strip()]
    unknown = [c for c in more if c not in classes]
    if unknown:
        raise ConfigError(f"imagetext more_concepts: unknown class {unknown[0]!r}; classes: {', '.join(classes)}")
    order = [scenario_class] + [classes.index(c) for c in more if classes.index(c) != scenario_class]
    if len(order) < params.concepts:
        raise ConfigError(f"imagetext: {params.concepts} concepts asked, more_concepts names only {len(order) - 1} more")
    return tuple(order[: params.concepts])


def first_per_class(labels: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first `per_class` samples of each class, in order (all when 0)."""
    if per_class == 0:
        return torch.arange(len(labels))
    rank = torch.zeros_like(labels)
    for k in labels.unique().tolist():
        where = labels == k
        rank[where] = torch.arange(int(where.sum()))
    return torch.nonzero(rank < per_class).flatten()


def new_model(geometry: str, params: ImageTextParams, bank: CaptionBank, seed: int) -> ImageTextModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ImageTextModel(
            geometry, vocab_size=len(bank.vocab), seq_len=bank.seq_len, eos_id=bank.vocab.index(EOS),
            image_width=params.image_width, text_width=params.text_width, text_layers=params.text_layers,
            text_heads=params.text_heads, embed_dim=params.embed_dim, entail_weight=params.entail_weight,
        )


def architecture(geometry: str, params: ImageTextParams) -> dict[str, Any]:
    fields = ("image_width", "text_width", "text_layers", "text_heads", "embed_dim", "entail_weight")
    return {"geometry": geometry, "seq_len": SEQ_LEN, **{f: getattr(params, f) for f in fields}}


@dataclass
class References:
    """Original (all training images) and Retrain (without the forgotten concepts), trained
    once and cached as checkpoints keyed by everything that determines them."""

    engine: Engine
    geometry: str
    params: ImageTextParams
    bank: CaptionBank
    recipe: TrainRecipe
    data_fingerprint: str
    store: CheckpointStore
    progress: Progress = SILENT

    def load(self, state: dict) -> ImageTextModel:
        model = new_model(self.geometry, self.params, self.bank, 0)
        model.load_state_dict(state)
        return self.engine.prepare(model)

    def get(self, kind: str, seed: int, data: DeviceData, desc: str) -> tuple[dict, dict]:
        key = {
            "kind": kind, "task": "imagetext", "version": TRAINING_VERSION, "data": self.data_fingerprint,
            "architecture": architecture(self.geometry, self.params), "vocab": len(self.bank.vocab),
            "recipe": dataclasses.asdict(self.recipe), "generic_fraction": self.params.generic_fraction,
            "warmup_fraction": self.params.warmup_fraction, "seed": seed,
            "train_indices": index_hash(data.index.cpu()), "n_train": len(data),
            **self.engine.weights_key(),
        }
        mem_key = key_hash(key)
        if mem_key in _memory:
            return _memory[mem_key]
        loaded = self.store.load(f"imagetext-{kind}", key)
        if loaded is not None:
            state, meta = loaded[0], {**loaded[1], "cached": True}
        else:
            model = self.engine.prepare(new_model(self.geometry, self.params, self.bank, derive_seed(seed, kind, "init")))
            towers = TowerCounter()
            towers.attach(model)
            self.engine.reset_peak_memory()
            stats = train_contrastive(self.engine, model, data, self.bank, self.recipe, self.params.generic_fraction,
                                      self.params.warmup_fraction, derive_seed(seed, kind, "train"), self.progress, desc)
            towers.detach()
            if not _all_finite(model):
                raise CellFailure(f"{desc}: a weight became NaN/inf")
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
            meta = {**stats, "samples": towers.counts(), "peak_memory_mb": self.engine.peak_memory_mb()}
            self.store.save(f"imagetext-{kind}", key, state, meta)
            meta = {**meta, "cached": False}
        _memory[mem_key] = (state, meta)
        return state, meta


@dataclass
class PreparedImageTextCell:
    spec: Any
    engine: Engine
    refs: References
    bank: CaptionBank
    params: ImageTextParams
    method_params: Any
    forgotten: tuple[int, ...]
    retain: DeviceData
    forget: DeviceData
    test: DeviceData
    ctx: ImageTextContext
    towers: TowerCounter
    cost: DualCost
    original_state: dict


def prepare(spec, progress: Progress = SILENT) -> PreparedImageTextCell:
    """Data, captions, the Original dual encoder (trained or cached) and the method's context."""
    if spec.threads:
        torch.set_num_threads(spec.threads)
    if spec.dataset != "cifar10":
        raise ConfigError(f"the imagetext task captions CIFAR-10 classes; dataset {spec.dataset!r} is not supported")
    params = task_params(spec)
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, Path(spec.data_root), cache=Path(spec.cache_dir), download=spec.download)
    ds = data.spec
    scenario = parse_scenario(spec.scenario, ds.num_classes, spec.forget_class)
    if scenario.kind != "class":
        raise ConfigError(f"the imagetext task forgets concepts: use a class scenario (e.g. class5, dog), not {spec.scenario}")
    forgotten = forgotten_classes(scenario.forget_class, params, ds.classes)
    info = METHODS.get(spec.method)
    method_params = info.params(spec.params)

    engine = Engine(device, ds.mean, ds.std, ds.augment)
    bank = build_bank(ds.classes, SEQ_LEN).to(device)
    train_all, test_all = device_sets(data, device)
    train = train_all.take(first_per_class(data.train_y, params.train_per_class).to(device), name="train")
    test = test_all.take(first_per_class(data.test_y, params.test_per_class).to(device), name="test")
    is_forgotten = torch.isin(train.labels, torch.tensor(forgotten, device=device))
    retain, forget = train.where(~is_forgotten, "retain"), train.where(is_forgotten, "forget")

    refs = References(engine, spec.model, params, bank, TrainRecipe(**spec.train), data.fingerprint,
                      CheckpointStore(Path(spec.cache_dir)), progress)
    original_state, _ = refs.get("original", spec.seed, train, f"Original {spec.model} s{spec.seed}")
    model = refs.load(original_state)
    model.train()
    towers = TowerCounter()
    towers.attach(model)

    def retrain_provider() -> tuple[dict, RetrainCost]:
        state, meta = refs.get("retrain", spec.seed, retain, f"Retrain {spec.model} {spec.scenario} s{spec.seed}")
        return state, RetrainCost(meta["samples"], meta["seconds"], meta["device"], meta["cached"], meta.get("peak_memory_mb"))

    ctx = ImageTextContext(
        bank=bank, forgotten=forgotten, generic_fraction=params.generic_fraction, towers=towers,
        make_original=lambda: refs.load(original_state), retrain=retrain_provider,
        engine=engine, model=model, retain=retain, forget=forget, test=test, scenario=scenario,
        num_classes=ds.num_classes, seed=derive_seed(spec.seed, "method", spec.method), progress=progress,
        label=f"{spec.method} {spec.model} {spec.scenario} s{spec.seed}",
    )
    cost = dual_cost(model, json.dumps(architecture(spec.model, params) | {"vocab": len(bank.vocab)}, sort_keys=True))
    return PreparedImageTextCell(spec, engine, refs, bank, params, method_params, forgotten, retain, forget, test,
                                 ctx, towers, cost, original_state)


def retrain_reference(cell: PreparedImageTextCell) -> tuple[dict, dict]:
    """Retrain's metrics and confusion matrices on this split (evaluated once per process)."""
    spec = cell.spec
    key = json.dumps([spec.model, spec.train, spec.task_params, spec.eval, cell.forgotten, spec.seed, str(cell.engine.device)])
    if key not in _reference:
        state, _ = cell.ctx._retrain_provider()
        _reference[key] = evaluate(cell.engine, cell.refs.load(state), cell.bank, cell.test, cell.forget,
                                   cell.forgotten, spec.eval["batch_size"])
    metrics, matrices = _reference[key]
    return dict(metrics), matrices


def run_imagetext_cell(spec, progress: Progress = SILENT) -> dict[str, Any]:
    cell = prepare(spec, progress)
    engine, ctx = cell.engine, cell.ctx
    reference, reference_matrices = retrain_reference(cell)

    seconds, peak_memory_mb = engine.timed(lambda: cell.method_params.run(ctx))
    cell.towers.detach()
    if ctx.saw_nonfinite() or not _all_finite(ctx.model):
        raise CellFailure("diverged: a loss or a weight became NaN/inf")

    eval_start = time.perf_counter()
    metrics, matrices = evaluate(engine, ctx.model, cell.bank, cell.test, cell.forget, cell.forgotten, spec.eval["batch_size"])
    eval_seconds = time.perf_counter() - eval_start
    if any(not math.isfinite(metrics[k]) for k in GAP_METRICS):
        raise CellFailure(f"metrics are not finite: {metrics}")
    metrics["forget_row_tv"] = row_distance(matrices["seen"], reference_matrices["seen"], cell.forgotten)
    metrics["avg_gap"] = avg_gap(metrics, reference, TASKS.get(spec.task).gap_metrics)

    if ctx.retrain_cost is not None:
        rc = ctx.retrain_cost
        counts, seconds, device, cached, peak_memory_mb = rc.counts, rc.seconds, rc.device, rc.cached, rc.peak_memory_mb
    else:
        counts, device, cached = cell.towers.counts(), engine.device_name(), False
    model = ctx.model
    return {
        **record_envelope(spec),
        "status": "ok",
        "metrics": metrics,
        "retrain_reference": reference,
        "confusion": {"classes": list(cell.bank.classes), "forgotten": list(cell.forgotten),
                      "seen": matrices["seen"], "heldout": matrices["heldout"],
                      "retrain_seen": reference_matrices["seen"]},
        "split": {"forgotten_classes": [cell.bank.classes[k] for k in cell.forgotten], "n_forget": len(cell.forget),
                  "n_retain": len(cell.retain), "n_test": len(cell.test), "forget_hash": index_hash(cell.forget.index.cpu())},
        "params": dataclasses.asdict(cell.method_params),
        "method_info": {**ctx.info, "curvature": float(model.curvature().detach()) if model.hyperbolic else None,
                        "logit_scale": float(model.scale().detach())},
        "cost": {
            "samples": counts,
            "forward_macs_per_sample": {"image": cell.cost.image_macs, "text": cell.cost.text_macs},
            "pflops": cell.cost.pflops(counts),
            "from_cache": cached,
        },
        "timing": {"unlearn_seconds": seconds, "eval_seconds": eval_seconds, "device": device,
                   "peak_memory_mb": peak_memory_mb},
        "evaluation": {"precision": EVAL_PRECISION},
        "environment": environment(engine.device),
        "code": code_version(),
        "created": now_iso(),
    }


def avg_gap(metrics: dict[str, float], reference: dict[str, float], keys: tuple[str, ...]) -> float:
    return float(sum(abs(metrics[k] - reference[k]) for k in keys) / len(keys))
