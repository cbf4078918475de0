"""What a worker does with a job, whichever executor shipped it there."""

from __future__ import annotations

import importlib
import traceback


from bench.executors.dag import Job
from bench.progress import SILENT, Progress
from bench.worker_cache import WorkerCache


def run_job(job: Job, cache: WorkerCache, progress: Progress = SILENT) -> dict:
    """{"record": ...} for a cell (failed cells included); {"done": label} or {"error": line} for a model."""
    from bench.cell import execute_cell, reference_models

    if job.kind == "cell":
        if job.method_module:
            importlib.import_module(job.method_module)
        return {"record": execute_cell(job.spec, progress, cache)}
    try:
        if job.spec.threads:
            import torch

            torch.set_num_threads(job.spec.threads)
        refs = reference_models(job.spec, cache, progress)
        if job.kind == "original":
            _, meta = refs.original(job.spec.seed)
        else:
            from bench.splits import draw_split, parse_scenario

            spec, data = job.spec, refs.data
            scenario = parse_scenario(spec.scenario, data.spec.num_classes, spec.forget_class)
            _, meta = refs.retrain(draw_split(scenario, data.train_y, spec.seed))
        return {"done": job.label, "trained": meta.get("trained_now", False)}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}".splitlines()[0], "traceback": traceback.format_exc(limit=-8)}


def set_parent_death_signal() -> None:
    """Linux: this process is killed when the driver dies, so no orphan keeps computing."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass



