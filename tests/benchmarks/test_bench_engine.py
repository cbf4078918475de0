"""Engine benchmarks (pytest-benchmark; skipped in the normal test run).

    python -m pytest tests/benchmarks --benchmark-only --benchmark-json=FILE

Each benchmark's time is what pytest-benchmark measures; the derived figures (img/s,
seconds per 45k-sample epoch, slowdown against FLOPs, peak memory) are in its
`extra_info`, so the JSON holds them beside the machine info. Settings: conftest.py.
"""

from __future__ import annotations

import time

import pytest

from bench.engine import Engine
from bench.perf import STEP_MODES, _fresh_model, training_step
from bench.reference import device_sets

EPOCH_SAMPLES = 45_000  # CIFAR-10's retain set at 10% random forgetting


def _loop(perf_setting, perf_data, batch_size: int, mode: str):
    """(engine, run(n): n training steps of `mode`, device-synchronised, images per step)."""
    engine, one_step, images = training_step(perf_data, perf_setting.model, perf_setting.device, batch_size, mode)

    def run(n: int) -> None:
        for _ in range(n):
            one_step()
        engine.synchronize()

    return engine, run, images


@pytest.mark.parametrize("batch_size", [256, 512])
@pytest.mark.parametrize("mode", STEP_MODES)
def test_training_img_s(benchmark, perf_setting, perf_data, mode, batch_size):
    """img/s of the plain loop, the engine's eager steps and its captured steps."""
    if mode == "captured" and perf_setting.device.type != "cuda":
        pytest.skip("CUDA graphs need CUDA (on the CPU, captured = eager)")
    engine, run, n = _loop(perf_setting, perf_data, batch_size, mode)
    run(5)  # warm-up (and, captured: capture)
    steps = perf_setting.steps
    benchmark.pedantic(run, args=(steps,), rounds=3, iterations=1)
    benchmark.extra_info.update(device=engine.device_name(), model=perf_setting.model, dataset=perf_setting.dataset,
                                mode=mode, batch_size=n, steps=steps,
                                img_s=steps * n / benchmark.stats.stats.median)


def test_epoch_seconds(benchmark, perf_setting, perf_data):
    """Seconds per 45k-sample epoch (batch 256, captured on CUDA), from the steps of one epoch."""
    mode = "captured" if perf_setting.device.type == "cuda" else "eager"
    engine, run, n = _loop(perf_setting, perf_data, 256, mode)
    run(5)
    steps = -(-EPOCH_SAMPLES // n) if perf_setting.device.type == "cuda" else perf_setting.steps
    benchmark.pedantic(run, args=(steps,), rounds=2, iterations=1)
    per_step = benchmark.stats.stats.median / steps
    benchmark.extra_info.update(device=engine.device_name(), mode=mode, steps=steps,
                                seconds_per_45k_epoch=per_step * -(-EPOCH_SAMPLES // n))


def test_evaluation_seconds(benchmark, perf_setting, perf_data):
    """RA/UA/TA + MIA of one random-10% cell on the full train/test sets (`evaluate`, what a
    cell runs), and the MIA's SVC fit alone on the same confidences (its CPU share)."""
    from bench.metrics import EvalSets, evaluate, mia_efficacy
    from bench.splits import draw_split, parse_scenario

    device, spec = perf_setting.device, perf_data.spec
    engine = Engine(device, spec.mean, spec.std, spec.augment)
    model = _fresh_model(engine, perf_data, perf_setting.model)
    train, test = device_sets(perf_data, device)
    split = draw_split(parse_scenario("random10", spec.num_classes, 9), perf_data.train_y, 0)
    sets = EvalSets.build(train.take(split.retain.to(device)), train.take(split.forget.to(device)), test, None)

    metrics = benchmark.pedantic(lambda: evaluate(engine, model, sets, 2048), rounds=2, iterations=1, warmup_rounds=1)
    retain_conf, _ = engine.true_label_outputs(model, sets.retain, 2048)
    forget_conf, _ = engine.true_label_outputs(model, sets.forget, 2048)
    test_conf, _ = engine.true_label_outputs(model, sets.test, 2048)
    members, nonmembers, target = (t.cpu().numpy() for t in (retain_conf[: len(sets.test)], test_conf, forget_conf))
    start = time.perf_counter()
    mia = mia_efficacy(members, nonmembers, target)
    mia_seconds = time.perf_counter() - start
    assert mia == metrics["MIA"]  # the same computation as the cell's
    benchmark.extra_info.update(device=engine.device_name(), retain=len(sets.retain), test=len(sets.test),
                                forget=len(sets.forget), MIA=metrics["MIA"], mia_fit_seconds=mia_seconds)


def test_method_slowdown_and_peak_memory(benchmark, perf_setting, perf_data):
    """Each method's procedure against its counted FLOPs at the plain step's rate
    (`bench perf --methods`), with its peak device memory; one round. Last in the file: the
    longest, so a time limit cuts only this one."""
    from bench import paths, profiles
    from bench.grid import plan
    from bench.method import resolve_methods
    from bench.perf import measure_methods, method_row, plain_flop_rate

    profile = profiles.load(perf_setting.profile)
    cells, _ = plan(profile, resolve_methods(perf_setting.methods), scenarios=["random10"], seeds=[0],
                    device=perf_setting.device.type, data_root=paths.data_root(None),
                    cache_dir=paths.cache_dir(None), download=False)
    cells = [c for c in cells if c.method not in ("Retrain", "Original")]
    rate = plain_flop_rate(perf_data, cells[0].model, perf_setting.device, profile.train.batch_size,
                           steps=perf_setting.steps)

    def report(result):  # each row as it comes (seen with -s: kept in the log if time runs out)
        print(method_row(result), flush=True)

    results = benchmark.pedantic(measure_methods, args=(cells, rate, report), rounds=1, iterations=1)
    benchmark.extra_info.update(plain_tflop_s=rate / 1e12, methods={
        r.method: {"pflops": r.pflops, "seconds": r.seconds, "predicted_seconds": r.predicted_seconds,
                   "slowdown": r.slowdown, "peak_memory_mb": r.peak_memory_mb, "device": r.device}
        for r in results})
