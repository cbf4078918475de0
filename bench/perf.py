"""`bench perf`: training throughput (img/s) of the engine against a plain eager loop.

The plain loop is the ceiling-style reference: one pre-normalised float batch
reused every step, eager forward/backward, torch's default SGD. The engine loop
is what Original, Retrain and the methods run: device-resident uint8 data, a
device-side permutation, batched crop+flip, normalisation, fused SGD. Both use
the same autocast/channels_last policy. Each figure is the median of `repeats`
timed runs of `steps` steps after `warmup` steps, device-synchronised.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

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
    engine_img_s: float

    @property
    def ratio(self) -> float:
        return self.engine_img_s / self.plain_img_s


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


def measure(data: ImageData, model_name: str, device: torch.device, batch_size: int,
            steps: int = 30, warmup: int = 5, repeats: int = 3) -> PerfResult:
    spec = data.spec
    engine = Engine(device, spec.mean, spec.std, spec.augment)
    train, _ = device_sets(data, device)
    generator = engine.generator(0)

    # plain eager loop on one fixed batch
    model = engine.prepare(build_model(model_name, spec.channels, spec.num_classes, spec.image_size, 0)).train()
    fixed = engine.sample(train, batch_size, generator, augment=False)
    plain_opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def plain_step() -> None:
        with engine.autocast():
            loss = F.cross_entropy(model(fixed.x), fixed.y)
        plain_opt.zero_grad(set_to_none=True)
        loss.backward()
        plain_opt.step()

    plain = _time_steps(engine, plain_step, steps, warmup, repeats, len(fixed))

    # the engine's loop: fresh permuted, augmented batches from uint8 on the device
    model = engine.prepare(build_model(model_name, spec.channels, spec.num_classes, spec.image_size, 0)).train()
    opt = engine.sgd(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    stream = _endless_batches(engine, train, batch_size, generator)

    def engine_step() -> None:
        engine.supervised_step(model, opt, next(stream))

    fast = _time_steps(engine, engine_step, steps, warmup, repeats, min(batch_size, len(train)))
    return PerfResult(model_name, spec.name, engine.device_name(), batch_size, plain, fast)


def _endless_batches(engine: Engine, data, batch_size: int, generator):
    while True:
        yield from engine.batches(data, batch_size, generator, drop_last=len(data) >= batch_size)


def render(results: list[PerfResult]) -> str:
    lines = ["| model | dataset | device | batch | plain loop img/s | engine img/s | engine / plain |",
             "|---|---|---|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r.model} | {r.dataset} | {r.device} | {r.batch_size} | {r.plain_img_s:,.0f} | "
                     f"{r.engine_img_s:,.0f} | {r.ratio:.2f} |")
    return "\n".join(lines) + "\n"
