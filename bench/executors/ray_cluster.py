"""Ray (`--executor ray [--address HOST:PORT]`): each job a Ray task on a cluster.

A task asks for `cpus` CPUs and 1/K of a GPU (`--cells-per-gpu K`), so K cells share a
GPU. Models go from the job that trained them to the cells that need them through the
checkpoint cache directory (`--cache-dir`), which must therefore be one folder every node
sees (shared storage, e.g. NFS) at the same path; the data root likewise. Ray retries a
task whose worker died once (`max_retries`); lost twice, the cell is recorded failed.
Without `--address` a local Ray is started on this machine and stopped at the end.
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.executors.dag import Job
from bench.worker_cache import WorkerCache

_CACHE: WorkerCache | None = None  # the Ray worker process's cache, kept across the tasks it runs


def _run_on_worker(job: Job, threads: int) -> dict:
    global _CACHE
    import torch

    from bench.executors.worker import run_job
    from bench.plugins import load_all_methods

    if _CACHE is None:
        load_all_methods()
        _CACHE = WorkerCache()
    torch.set_num_threads(threads)
    return run_job(job, _CACHE)


class RayBackend:
    def __init__(self, *, address: str | None, cpus_per_job: int, cells_per_gpu: int, device: str,
                 local_cpus: int | None = None, max_in_flight: int | None = None):
        try:
            import ray
        except ImportError:
            raise ConfigError("--executor ray needs Ray: pip install -e '.[ray]'") from None
        self.ray = ray
        self._started_here = not ray.is_initialized() and address is None
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=local_cpus, include_dashboard=False, log_to_driver=False)
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0) if device != "cpu" else 0
        self.threads = cpus_per_job
        options = {"num_cpus": cpus_per_job, "max_retries": 1, "retry_exceptions": False}
        if gpus:
            options["num_gpus"] = 1 / cells_per_gpu
        self._remote = ray.remote(_run_on_worker).options(**options)
        capacity = int(resources.get("CPU", 1)) // cpus_per_job
        if gpus:
            capacity = min(capacity, int(gpus * cells_per_gpu))
        self.slots = max_in_flight or max(1, capacity)
        self._running: dict = {}

    def submit(self, job: Job) -> None:
        self._running[self._remote.remote(job, self.threads)] = job

    def wait(self) -> list[tuple[Job, dict]]:
        ready, _ = self.ray.wait(list(self._running), num_returns=1)
        ended = []
        for ref in ready:
            job = self._running.pop(ref)
            try:
                outcome = self.ray.get(ref)
            except self.ray.exceptions.RayError as exc:  # worker died (after Ray's one retry), node lost, ...
                outcome = {"error": f"{type(exc).__name__} (after Ray's retry)".splitlines()[0]}
            ended.append((job, outcome))
        return ended

    def close(self) -> None:
        for ref in self._running:
            self.ray.cancel(ref, force=True)
        self._running.clear()
        if self._started_here:
            self.ray.shutdown()
