"""The ssl task's cell: unlearn a self-supervised encoder, audit it, compare it with Retrain's."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from bench.cell import CellSpec, now_iso, record_envelope, resolve_device
from bench.checkpoints import CheckpointStore
from bench.data.catalog import load_dataset
from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.environment import code_version, environment
from bench.errors import CellFailure, ConfigError
from bench.flops import CostModel, SampleCounter, SampleCounts, forward_macs, second_order_extra_per_sample
from bench.method import METHODS, ReportedCost
from bench.metrics import EVAL_PRECISION
from bench.progress import SILENT, Progress
from bench.splits import derive_seed, parse_scenario
from bench.tasks import TASKS
from bench.tasks.ssl import SSL
from bench.tasks.ssl.audit import AuditConfig, AuditSets, audit
from bench.tasks.ssl.context import SSLContext
from bench.tasks.ssl.models import build_ssl_model
from bench.tasks.ssl.objective import Objective
from bench.tasks.ssl.reference import EncoderReferences
from bench.tasks.ssl.setting import draw_setting

_reference_metrics: dict[str, dict] = {}


def _linear_macs(module: torch.nn.Module | None) -> int:
    if module is None:
        return 0
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, torch.nn.Linear))


@functools.lru_cache(maxsize=None)
def encoder_cost_model(model_name: str, channels: int, num_classes: int, image_size: int, hidden: int, dim: int) -> CostModel:
    """F = fvcore's MACs of the backbone (training mode) + the projector's (+ BYOL's predictor's)
    matrix products, for every counted pass (a target pass, which has no predictor, is counted
    at the same F: an over-count of the predictor's share, < 1% for ResNet-18; so is a pass
    through the backbone alone, e.g. GP's penalty: the heads' share, about 0.2%). The double
    backward's extra is measured on the backbone, where the gradient penalty's D(x) is taken."""
    model = build_ssl_model(model_name, channels, num_classes, image_size, 0, hidden, dim, 1)
    backbone_f = forward_macs(model.online.backbone, channels, image_size)
    f = backbone_f + _linear_macs(model.online.projector) + _linear_macs(model.predictor)
    extra = second_order_extra_per_sample(model.online.backbone, channels, image_size, backbone_f)
    return CostModel(forward_macs=float(f), second_order_per_sample=extra)


def _take(images: torch.Tensor, labels: torch.Tensor, indices: torch.Tensor, device: torch.device, name: str) -> DeviceData:
    return DeviceData(images[indices].to(device), labels[indices].to(device), indices.to(device), name)


def _all_finite(model: torch.nn.Module) -> bool:
    return bool(torch.stack([torch.isfinite(p).all() for p in model.parameters()]).all().item())


def run_ssl_cell(spec: CellSpec, progress: Progress = SILENT) -> dict[str, Any]:
    if spec.threads:
        torch.set_num_threads(spec.threads)
    tp = spec.task_params
    device = resolve_device(spec.device)
    data = load_dataset(spec.dataset, Path(spec.data_root), cache=Path(spec.cache_dir), download=spec.download)
    ds = data.spec
    engine = Engine(device, ds.mean, ds.std, ds.augment)
    scenario = parse_scenario(spec.scenario, ds.num_classes, spec.forget_class)
    info = METHODS.get(spec.method)
    if not info.supports_task(SSL):
        raise ConfigError(f"method {spec.method} does not support the ssl task")
    if scenario.kind not in info.scenarios:
        raise ConfigError(f"method {spec.method} does not support {scenario.kind} forgetting")
    params = info.params(spec.params)
    setting = draw_setting(data.train_y, len(data.test_y), scenario, spec.seed, tp)

    retain = _take(data.train_x, data.train_y, setting.retain, device, "retain")
    forget = _take(data.train_x, data.train_y, setting.forget, device, "forget")
    nonmembers = _take(data.test_x, data.test_y, setting.nonmembers, device, "nonmembers")
    pool = _take(data.train_x, data.train_y, setting.pool, device, "nonmember_pool")
    objective = Objective.from_params(spec.model.partition("-")[0], engine, ds.image_size, tp)
    refs = EncoderReferences(engine, data, spec.model, tp, objective, CheckpointStore(Path(spec.cache_dir)), progress)
    sets = AuditSets(retain, forget, nonmembers, setting.nonmember_eval_pos.to(device))
    cfg = AuditConfig(ds.num_classes, ds.image_size, spec.eval["batch_size"], derive_seed(spec.seed, "ssl-audit"),
                      tp["mia_views"], tp["mia_crop_scale"], tp["mia_grid"], tp["knn_k"], tp["knn_temperature"],
                      tp["probe_epochs"], tp["probe_lr"], tp["probe_batch_size"])

    def retrain_state() -> tuple[dict, dict]:
        return refs.get("retrain", spec.seed, setting.retain, f"Retrain {spec.scenario} s{spec.seed}")

    ref_key = json.dumps([spec.dataset, spec.model, tp, spec.eval, setting.describe(), spec.seed, str(device)], default=str)
    if ref_key not in _reference_metrics:
        _reference_metrics[ref_key] = audit(engine, refs.load(retrain_state()[0]), objective, sets, cfg)
    reference = dict(_reference_metrics[ref_key])

    original_state, _ = refs.get("original", spec.seed, setting.members, f"Original s{spec.seed}")
    model = refs.load(original_state)
    model.train()
    counter = SampleCounter()
    counter.attach(model.online)
    if model.target is not None:
        counter.attach(model.target)

    def retrain_provider() -> tuple[dict, ReportedCost]:
        state, meta = retrain_state()
        return state, ReportedCost(SampleCounts(**meta["samples"]), meta["seconds"], meta["device"], meta["cached"],
                                   meta.get("peak_memory_mb"))

    ctx = SSLContext(
        objective=objective, nonmember_pool=pool,
        engine=engine, model=model, retain=retain, forget=forget, test=nonmembers, scenario=scenario,
        num_classes=ds.num_classes, seed=derive_seed(spec.seed, "method", spec.method), counter=counter,
        make_original=lambda: refs.load(original_state), retrain=retrain_provider, progress=progress,
        label=f"{spec.method} {spec.scenario} s{spec.seed}",
    )
    costs = encoder_cost_model(spec.model, ds.channels, ds.num_classes, ds.image_size, tp["proj_hidden"], tp["proj_dim"])

    seconds, peak_memory_mb = engine.timed(lambda: params.run(ctx))
    counter.detach()
    if ctx.saw_nonfinite() or not _all_finite(ctx.model):
        raise CellFailure("diverged: a loss or a weight became NaN/inf")

    eval_start = time.perf_counter()
    metrics = audit(engine, ctx.model, objective, sets, cfg)
    eval_seconds = time.perf_counter() - eval_start
    gap_metrics = TASKS.get(SSL).gap_metrics
    if any(not math.isfinite(metrics[k]) for k in gap_metrics):
        raise CellFailure(f"metrics are not finite: {metrics}")
    metrics["avg_gap"] = float(sum(abs(metrics[k] - reference[k]) for k in gap_metrics) / len(gap_metrics))

    reported = ctx.reported_cost or ReportedCost(counter.counts, seconds, engine.device_name(), False, peak_memory_mb)
    return {
        **record_envelope(spec),
        "status": "ok",
        "metrics": metrics,
        "retrain_reference": reference,
        "split": setting.describe(),
        "params": dataclasses.asdict(params),
        "method_info": ctx.info,
        "cost": {
            "samples": reported.counts.as_dict(),
            "forward_macs_per_sample": costs.forward_macs,
            "second_order_flops_per_sample": costs.second_order_per_sample,
            "pflops": costs.pflops(reported.counts),
            "from_cache": reported.cached,
        },
        "timing": {"unlearn_seconds": reported.seconds, "eval_seconds": eval_seconds, "device": reported.device,
                   "peak_memory_mb": reported.peak_memory_mb},
        "evaluation": {"precision": EVAL_PRECISION},
        "environment": environment(engine.device),
        "code": code_version(),
        "created": now_iso(),
    }
