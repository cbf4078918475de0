"""Executors: the DAG, the local worker pool, Ray, and faults (killed workers and drivers, two grids at once).

Grids here are tiny (digits, a 2-epoch Original, two scenarios); pool and Ray runs must give the
records of the one-process run. The quick grid itself is compared in
tests/benchmarks/test_bench_executors.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import profiles
from bench.executors import make_executor
from bench.executors.dag import build_dag
from bench.executors.local_pool import LocalPoolBackend
from bench.executors.scheduler import DagExecutor
from bench.grid import InProcessExecutor, plan, run_grid  # noqa: F401  (InProcessExecutor: the reference subprocess imports it from here)
from bench.method import METHODS, resolve_methods
from bench.progress import SILENT
from bench.records import RecordStore

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "dataset": "digits", "model": "small_cnn", "device": "cpu", "seeds": [0], "scenarios": ["random10", "class3"],
    # one thread, as each pool worker and Ray task gets here: the thread count changes reduction order,
    # so the comparison holds on any CPU only at the same count (2 vs 1 differed on some machines)
    "methods": ["Original", "FT"], "download": False, "threads": 1,
    "train": {"epochs": 2, "batch_size": 128, "lr": 0.1},
    "params": {"FT": {"epochs": 1}},
}


def _cells(cache_dir: Path, raw: dict = TINY):
    profile = profiles.parse(raw, name="tiny")
    cells, _ = plan(profile, resolve_methods(list(profile.methods)), data_root=cache_dir / "data", cache_dir=cache_dir)
    return cells


def comparable(record: dict) -> dict:
    """What must not depend on the executor: all but timings, creation time and the environment (threads).
    The stored per-example logits are compared apart (`_same_outputs`): a worker's thread count changes
    their last bits, not the metrics."""
    return {k: v for k, v in record.items() if k not in ("timing", "created", "environment", "outputs")}


def _same_outputs(a: RecordStore, b: RecordStore) -> None:
    from bench.outputs import read_outputs

    for record in a.all():
        other = b.read(record["cell_id"])
        x, y = read_outputs(a.records_dir, record["outputs"]), read_outputs(b.records_dir, other["outputs"])
        assert sorted(x) == sorted(y)
        for key in x:
            assert np.allclose(x[key], y[key], rtol=1e-5, atol=1e-5), (record["cell_id"], key)


def _records(store: RecordStore) -> dict[str, dict]:
    return {r["cell_id"]: comparable(r) for r in store.all()}


@pytest.fixture(scope="module")
def one_process(tmp_path_factory):
    """The tiny grid run the plain way: one process, its own checkpoint cache. A fresh interpreter,
    like the pool's workers: what earlier tests left in this process (seen once in a full run, not
    reproduced alone) must not make the reference differ."""
    tmp = tmp_path_factory.mktemp("one-process")
    code = (f"import sys; sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / 'tests')!r}]\n"
            "from pathlib import Path\n"
            "from test_executors import _cells, InProcessExecutor, RecordStore, SILENT, run_grid\n"
            f"tmp = Path({str(tmp)!r})\n"
            "s = run_grid(_cells(tmp / 'cache'), RecordStore(tmp / 'results'), InProcessExecutor(SILENT), SILENT)\n"
            "assert s.failed == [] and s.ran == 6, s\n")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    store = RecordStore(tmp / "results")
    return _records(store), store


def test_the_dag_trains_each_model_once_before_the_cells_needing_it(tmp_path):
    jobs = build_dag(_cells(tmp_path))
    kinds = [j.kind for j in jobs]
    assert kinds == ["original", "retrain", "retrain"] + ["cell"] * 6
    models = {j.key for j in jobs if j.kind != "cell"}
    for job in jobs[3:]:
        assert len(job.needs) == 2 and set(job.needs) <= models
    assert {jobs[0].label, jobs[1].label, jobs[2].label} == {"Original s0", "Retrain random10 s0", "Retrain class3 s0"}


def test_only_classifier_cells_get_harness_model_jobs(tmp_path):
    """The ssl and imagetext tasks train their own Original/Retrain inside the cell: a harness
    model job for them would build a classifier named 'clip' or 'simclr-...' and fail every cell."""
    import dataclasses

    cells = _cells(tmp_path)
    for task in ("ssl", "imagetext"):
        other = [dataclasses.replace(c, task=task) for c in cells]
        jobs = build_dag(other)
        assert [j.kind for j in jobs] == ["cell"] * 6 and all(j.needs == () for j in jobs)


def test_local_pool_of_two_gives_the_one_process_records(tmp_path, one_process):
    store = RecordStore(tmp_path / "results")
    executor = make_executor("local", SILENT, device="cpu", workers=2)
    assert isinstance(executor.backend, LocalPoolBackend) and executor.backend.slots == 2
    summary = run_grid(_cells(tmp_path / "cache"), store, executor, SILENT)
    assert summary.failed == [] and summary.ran == 6
    assert _records(store) == one_process[0]
    _same_outputs(store, one_process[1])
    assert len(list((tmp_path / "cache" / "checkpoints").glob("*.pt"))) == 3  # Original + two Retrains


def test_ray_on_two_cpus_gives_the_one_process_records(tmp_path, one_process):
    pytest.importorskip("ray")
    from bench.executors.ray_cluster import RayBackend

    backend = RayBackend(address=None, cpus_per_job=1, cells_per_gpu=1, device="cpu", local_cpus=2)
    assert backend.slots == 2
    store = RecordStore(tmp_path / "results")
    summary = run_grid(_cells(tmp_path / "cache"), store, DagExecutor(backend, SILENT, threads=1), SILENT)
    assert summary.failed == [] and summary.ran == 6
    assert _records(store) == one_process[0]
    _same_outputs(store, one_process[1])


def test_a_cpu_only_machine_defaults_to_one_worker_in_this_process():
    executor = make_executor("local", SILENT, device="cpu")
    assert type(executor.backend).__name__ == "InProcessBackend"


@pytest.mark.parametrize("threads, workers", [(1, 4), (2, 2), (3, 1), (4, 1), (8, 1)])
def test_a_profile_fixing_threads_per_cell_fills_the_cores_with_workers_of_that_many(monkeypatch, threads, workers):
    """Every worker runs a cell with the profile's threads, so any worker count gives the same numbers."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)), raising=False)
    executor = make_executor("local", SILENT, device="cpu", threads=threads)
    assert executor.threads == threads
    if workers == 1:
        assert type(executor.backend).__name__ == "InProcessBackend"
    else:
        assert isinstance(executor.backend, LocalPoolBackend) and executor.backend.slots == workers
    explicit = make_executor("local", SILENT, device="cpu", threads=threads, workers=2)  # asked: cores / workers each
    assert isinstance(explicit.backend, LocalPoolBackend) and explicit.threads == 2


# --------------------------------------------------------------------------- faults


@pytest.fixture
def crashing_method():
    """Registers TestCrash (tests/crashing_method.py) for one test, then removes it again."""
    import crashing_method as module  # noqa: F401  (tests/ is on sys.path under pytest)

    yield METHODS.get("TestCrash")
    METHODS._entries.pop("TestCrash", None)
    sys.modules.pop("crashing_method", None)


def _crash_grid(cache_dir: Path, attempts: Path, crashes: int):
    attempts.mkdir()
    raw = {**TINY, "scenarios": ["random10"], "methods": ["TestCrash"],
           "params": {"TestCrash": {"attempts_dir": str(attempts), "crashes": crashes}}}
    return _cells(cache_dir, raw)


@pytest.mark.parametrize("crashes, status", [(1, "ok"), (2, "failed")])
def test_a_worker_killed_mid_cell_is_retried_once_then_recorded_failed(tmp_path, crashing_method, crashes, status):
    attempts = tmp_path / "attempts"
    cells = _crash_grid(tmp_path / "cache", attempts, crashes)
    store = RecordStore(tmp_path / "results")
    summary = run_grid(cells, store, DagExecutor(LocalPoolBackend(2, 1, [None, None]), SILENT), SILENT)
    assert summary.ran == 2  # Retrain and TestCrash
    record = store.read(next(c for c in cells if c.method == "TestCrash").cell_id)
    assert record["status"] == status
    tries = sorted(attempts.iterdir())
    assert len(tries) == 2  # the first attempt and exactly one retry
    assert len({p.name.split("-pid")[1] for p in tries}) == 2  # each in its own worker process
    if status == "failed":
        assert record["error"] == "worker lost twice (worker process exited with code 3)"
    assert store.read(next(c for c in cells if c.method == "Retrain").cell_id)["status"] == "ok"


def _write_profile(path: Path, raw: dict) -> Path:
    lines = []
    tables = {k: v for k, v in raw.items() if isinstance(v, dict)}
    for key, value in raw.items():
        if key not in tables:
            lines.append(f"{key} = {json.dumps(value)}")
    for key, value in tables.items():
        if key == "params":
            for method, params in value.items():
                lines.append(f"[params.{method}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in params.items()]
        else:
            lines.append(f"[{key}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in value.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _bench_run(profile: Path, results: Path, cache: Path, *extra: str, own_group: bool = False) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "UNLEARN_BENCH_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--profile", str(profile), "--results", str(results),
         "--cache-dir", str(cache), "--data-root", str(cache / "data"), "--no-progress", *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=own_group)


def _wait_for_records(driver: subprocess.Popen, results: Path, n: int) -> None:
    deadline = time.monotonic() + 300
    while len(list((results / "records").glob("*.json"))) < n:
        assert driver.poll() is None, driver.communicate()
        assert time.monotonic() < deadline, f"fewer than {n} records after 300 s"
        time.sleep(0.2)


def _files(folder: Path, pattern: str) -> dict[str, tuple[int, bytes]]:
    return {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.glob(pattern)}


@pytest.mark.slow
def test_a_killed_driver_resumes_with_nothing_lost_or_redone(tmp_path):
    profile = _write_profile(tmp_path / "tiny.toml", {**TINY, "scenarios": ["random10", "class3", "random50"],
                                                    "methods": ["Original", "FT", "GA"]})
    results, cache = tmp_path / "results", tmp_path / "cache"
    driver = _bench_run(profile, results, cache, "--workers", "2")
    _wait_for_records(driver, results, 2)
    driver.send_signal(signal.SIGKILL)
    driver.communicate()
    time.sleep(1.0)  # the workers die with their driver (PR_SET_PDEATHSIG); let any last write land
    records, checkpoints = _files(results / "records", "*.json"), _files(cache / "checkpoints", "*.pt")
    assert 2 <= len(records) < 12

    rerun = _bench_run(profile, results, cache, "--workers", "2")
    _, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    assert f"{len(records)} of 12 cells already done" in err
    after_records, after_checkpoints = _files(results / "records", "*.json"), _files(cache / "checkpoints", "*.pt")
    assert len(after_records) == 12
    assert all(after_records[name] == value for name, value in records.items())  # nothing lost or rewritten
    assert all(after_checkpoints[name] == value for name, value in checkpoints.items())  # no model trained again


@pytest.mark.slow
def test_ctrl_c_on_a_pool_prints_one_line_and_no_worker_tracebacks(tmp_path):
    # Ctrl-C, or `timeout -s INT` as scripts/gpu-run.sh stops a grid chunk, reaches the driver and
    # every worker (one process group)
    profile = _write_profile(tmp_path / "tiny.toml", {**TINY, "scenarios": ["random10", "class3", "random50"],
                                                    "methods": ["Original", "FT", "GA"]})
    results, cache = tmp_path / "results", tmp_path / "cache"
    driver = _bench_run(profile, results, cache, "--workers", "2", own_group=True)
    _wait_for_records(driver, results, 2)
    os.killpg(driver.pid, signal.SIGINT)
    _, err = driver.communicate(timeout=120)
    assert driver.returncode == 130, err
    assert err.rstrip().endswith("interrupted: finished cells are saved; run the same command again to resume"), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err


@pytest.mark.slow
def test_two_runs_on_one_results_folder_share_the_work(tmp_path):
    profile = _write_profile(tmp_path / "tiny.toml", TINY)
    results, cache = tmp_path / "results", tmp_path / "cache"
    runs = [_bench_run(profile, results, cache) for _ in range(2)]
    outputs = [run.communicate(timeout=600)[1] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    lines = [line for err in outputs for line in err.splitlines()]
    trained = sorted(line.split(":")[0] for line in lines if line.endswith(": trained"))
    assert trained == ["Original s0", "Retrain class3 s0", "Retrain random10 s0"]  # each model once in all
    ran = [line for line in lines if line.startswith("[") and "finished meanwhile" not in line]
    assert len(ran) == 6  # each cell run by one of the two
    store = RecordStore(results)
    assert sorted(r["cell_id"] for r in store.all() if r["status"] == "ok") == sorted(c.cell_id for c in _cells(cache))
