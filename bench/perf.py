"""`bench perf`: training throughput (img/s) of the engine against a plain eager loop,
and each method's procedure against what its FLOP count predicts.

The engine loop is timed twice on CUDA: eager steps and steps replayed from a CUDA
graph (bench/captured.py). The plain loop is the ceiling-style reference: one pre-normalised float batch
reused every step, eager forward/backward, torch's default SGD. The engine loop
is what Original, Retrain and the methods run: device-resident uint8 data, a
device-side permutation, batched crop+flip, normalisation, fused SGD. Both use
the same autocast/channels_last policy. Each figure is the median of `repeats`
timed runs of `steps` steps after `warmup` steps, device-synchronised.

Per method (`measure_methods`): the procedure's counted FLOPs divided by the plain
step's FLOP rate (6F x plain img/s) is the time it "should" take; the slowdown is
measured seconds over that prediction. A method whose slowdown is well above 1 wastes
time somewhere (host syncs, small kernels, per-sample Python, recomputation).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from bench.data.catalog import ImageData
from bench.engine import Engine
from bench.models import build_model
from bench.reference import device_sets


@dataclass
class PerfResult:
    model: str
    dataset: str
    device: str
    batch_size: int
    plain_img_s: float
    engine_img_s: float  # the engine's loop, eager steps
    captured_img_s: float | None = None  # the engine's loop, CUDA-graph replays (CUDA only)

    @property
    def ratio(self) -> float:
        return (self.captured_img_s or self.engine_img_s) / self.plain_img_s


def _time_steps(engine: Engine, step, steps: int, warmup: int, repeats: int, batch_size: int) -> float:
    for _ in range(warmup):
        step()
    rates = []
    for _ in range(repeats):
        engine.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            step()
        engine.synchronize()
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def _engine(data: ImageData, device: torch.device, cuda_graphs: bool | None = None) -> Engine:
    spec = data.spec
    return Engine(device, spec.mean, spec.std, spec.augment, cuda_graphs=cuda_graphs)


def _fresh_model(engine: Engine, data: ImageData, model_name: str) -> torch.nn.Module:
    spec = data.spec
    return engine.prepare(build_model(model_name, spec.channels, spec.num_classes, spec.image_size, 0)).train()


STEP_MODES = ("plain", "eager", "captured")


def training_step(data: ImageData, model_name: str, device: torch.device, batch_size: int,
                  mode: str) -> tuple[Engine, Callable[[], None], int]:
    """(engine, one training step of a fresh model, images per step) for one loop: "plain" (one
    fixed pre-normalised batch, torch's default SGD), "eager" (the engine's fresh permuted,
    augmented batches from uint8 on the device, fused SGD, step by step) or "captured" (the
    same, replayed from a CUDA graph; on the CPU it runs eagerly)."""
    if mode not in STEP_MODES:
        raise ValueError(f"unknown mode {mode!r}; use one of {STEP_MODES}")
    engine = _engine(data, device, cuda_graphs=mode == "captured")
    train, _ = device_sets(data, device)
    generator = engine.generator(0)
    model = _fresh_model(engine, data, model_name)
    if mode == "plain":
        fixed = engine.sample(train, batch_size, generator, augment=False)
        plain_opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def plain_step() -> None:
            with engine.autocast():
                loss = F.cross_entropy(model(fixed.x), fixed.y)
            plain_opt.zero_grad(set_to_none=True)
            loss.backward()
            plain_opt.step()

        return engine, plain_step, len(fixed)
    opt = engine.sgd(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    step = engine.cross_entropy_step(model, opt)
    stream = _endless_batches(engine, train, batch_size, generator)

    def engine_step() -> None:
        batch = next(stream)
        step(batch.x, batch.y)

    return engine, engine_step, min(batch_size, len(train))


def step_img_s(data: ImageData, model_name: str, device: torch.device, batch_size: int, mode: str,
               steps: int = 30, warmup: int = 5, repeats: int = 3) -> float:
    """img/s of one training loop (`training_step`'s modes)."""
    engine, one_step, images = training_step(data, model_name, device, batch_size, mode)
    return _time_steps(engine, one_step, steps, warmup, repeats, images)


def plain_img_s(data: ImageData, model_name: str, device: torch.device, batch_size: int,
                steps: int = 30, warmup: int = 5, repeats: int = 3) -> float:
    """img/s of the plain eager loop: one fixed pre-normalised batch, torch's default SGD."""
    return step_img_s(data, model_name, device, batch_size, "plain", steps, warmup, repeats)


def measure(data: ImageData, model_name: str, device: torch.device, batch_size: int,
            steps: int = 30, warmup: int = 5, repeats: int = 3) -> PerfResult:
    plain = plain_img_s(data, model_name, device, batch_size, steps, warmup, repeats)
    eager = step_img_s(data, model_name, device, batch_size, "eager", steps, warmup, repeats)
    captured = (step_img_s(data, model_name, device, batch_size, "captured", steps, warmup, repeats)
                if device.type == "cuda" else None)
    return PerfResult(model_name, data.spec.name, _engine(data, device).device_name(), batch_size, plain, eager, captured)


def _endless_batches(engine: Engine, data, batch_size: int, generator):
    while True:
        yield from engine.batches(data, batch_size, generator, drop_last=len(data) >= batch_size)


def render(results: list[PerfResult]) -> str:
    lines = ["| model | dataset | device | batch | plain loop img/s | engine eager img/s | engine captured img/s | best / plain |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for r in results:
        captured = "-" if r.captured_img_s is None else f"{r.captured_img_s:,.0f}"
        lines.append(f"| {r.model} | {r.dataset} | {r.device} | {r.batch_size} | {r.plain_img_s:,.0f} | "
                     f"{r.engine_img_s:,.0f} | {captured} | {r.ratio:.2f} |")
    return "\n".join(lines) + "\n"


def plain_flop_rate(data: ImageData, model_name: str, device: torch.device, batch_size: int, steps: int = 30) -> float:
    """FLOP/s of the plain eager training step: 6F x plain img/s."""
    from bench.flops import cost_model

    spec = data.spec
    f = cost_model(model_name, spec.channels, spec.num_classes, spec.image_size).forward_macs
    return 6 * f * plain_img_s(data, model_name, device, batch_size, steps=steps)


@dataclass
class MethodPerf:
    method: str
    scenario: str
    device: str
    pflops: float
    seconds: float
    predicted_seconds: float  # the counted FLOPs at the plain step's FLOP rate
    peak_memory_mb: float | None

    @property
    def slowdown(self) -> float:
        return self.seconds / self.predicted_seconds if self.predicted_seconds > 0 else float("nan")


def measure_methods(specs, flop_rate: float, report: Callable[[MethodPerf], None] | None = None) -> list[MethodPerf]:
    """Run each cell's procedure once (no evaluation) and compare its time with its FLOPs;
    `report` sees each method's result as soon as it is measured (a log kept if time runs out)."""
    from bench.cell import prepare_cell

    results = []
    for spec in specs:
        cell = prepare_cell(spec)
        engine = cell.engine
        seconds, peak_memory_mb = engine.timed(lambda: cell.params.run(cell.ctx))
        cell.counter.detach()
        flops = cell.cost_model.flops(cell.counter.counts)
        results.append(MethodPerf(spec.method, spec.scenario, engine.device_name(), flops / 1e15, seconds,
                                  flops / flop_rate, peak_memory_mb))
        if report is not None:
            report(results[-1])
    return results


def render_methods(results: list[MethodPerf], flop_rate: float, limit: float = 1.5) -> str:
    lines = [f"plain training step: {flop_rate / 1e12:.3g} TFLOP/s (6F x plain img/s); slowdown = seconds / "
             f"(counted FLOPs at that rate), flagged above {limit}x",
             "| method | scenario | device | PFLOPs | seconds | predicted s | slowdown | peak MiB |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    lines += [method_row(r, limit) for r in results]
    return "\n".join(lines) + "\n"


def method_row(r: MethodPerf, limit: float = 1.5) -> str:
    flag = " (!)" if r.slowdown > limit else ""
    peak = "-" if r.peak_memory_mb is None else f"{r.peak_memory_mb:,.0f}"
    return (f"| {r.method} | {r.scenario} | {r.device} | {r.pflops:.3g} | {r.seconds:.3g} | "
            f"{r.predicted_seconds:.3g} | {r.slowdown:.2f}{flag} | {peak} |")
