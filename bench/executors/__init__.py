"""Executors: who runs a grid's jobs (bench.executors.dag) and where.

- `inprocess`: this process, one job after another (one worker);
- `local`: spawned worker processes on this machine (`--workers N`, `--cells-per-gpu K`);
- `ray`: Ray tasks on a cluster, or on a local Ray started for the run.
All three drive the same `DagExecutor`; each worker owns one `WorkerCache`.
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.progress import Progress

EXECUTORS = ("local", "ray")


def make_executor(kind: str, progress: Progress, *, device: str, workers: int | None = None,
                  cells_per_gpu: int | None = None, address: str | None = None, threads: int | None = None,
                  pin_threads: bool = False):
    """The executor for `bench run`'s flags. `threads`: the profile's CPU threads per cell; on a
    CPU-only machine without `workers`, the pool fills the cores with workers of that many threads.
    `pin_threads` (a profile with portable numerics): every CPU worker keeps `threads`, because
    the thread count changes reduction order and so the last bits, which a chaotic schedule (RL
    at a high lr) amplifies into different metrics; workers may then oversubscribe the cores."""
    from bench.executors.scheduler import DagExecutor

    if workers is not None and workers < 1:
        raise ConfigError("--workers must be >= 1")
    if cells_per_gpu is not None and cells_per_gpu < 1:
        raise ConfigError("--cells-per-gpu must be >= 1")
    if kind == "ray":
        from bench.executors.ray_cluster import RayBackend

        from bench.executors.local_pool import default_layout

        n, per_worker, _ = default_layout(device, workers, cells_per_gpu)
        backend = RayBackend(address=address, cpus_per_job=per_worker if workers else 1,
                             cells_per_gpu=cells_per_gpu or 1, device=device, max_in_flight=workers)
        return DagExecutor(backend, progress, threads=backend.threads)
    if kind != "local":
        raise ConfigError(f"unknown executor {kind!r}; use local or ray")
    if address:
        raise ConfigError("--address joins a Ray cluster; use it with --executor ray")
    from bench.executors.local_pool import LocalPoolBackend, default_layout

    n, per_worker, placement = default_layout(device, workers, cells_per_gpu, cell_threads=threads)
    if pin_threads and threads and all(p is None for p in placement):
        per_worker = threads
    if n == 1 and placement[0] is None:
        from bench.executors.inprocess import InProcessBackend

        return DagExecutor(InProcessBackend(progress), progress, threads=threads)
    return DagExecutor(LocalPoolBackend(n, per_worker, placement), progress, threads=per_worker)
