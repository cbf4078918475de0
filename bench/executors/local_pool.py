"""Worker processes on this machine (`--workers N --cells-per-gpu K`).

Each worker is a spawned process with its own `WorkerCache`, its share of the CPU threads
and, on a GPU machine, one GPU (worker i gets GPU i // K, so K workers share each GPU).
The driver hands out one job at a time over a pipe and watches each worker's process
sentinel: a worker that dies mid-job reports the job "lost" (the scheduler runs it again
once) and is replaced by a fresh process.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from multiprocessing.connection import wait as wait_ready

from bench.executors.dag import Job

DEFAULT_CELLS_PER_GPU = 2  # provisional until issue 9's H100 measurement of 1, 2, 4 cells per GPU


def default_layout(device: str, workers: int | None, cells_per_gpu: int | None,
                   cell_threads: int | None = None) -> tuple[int, int, list[int | None]]:
    """(workers, threads per worker, the GPU of each worker or None) for this machine.

    CPU only, `workers` not given and the profile fixing each cell's threads (`cell_threads`):
    as many workers as that fills the cores, each with exactly those threads, so the numbers
    are the same at any worker count (the thread count changes reduction order, and so the
    last bits that a chaotic schedule amplifies)."""
    import torch

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    gpus = torch.cuda.device_count() if device != "cpu" and torch.cuda.is_available() else 0
    k = cells_per_gpu or DEFAULT_CELLS_PER_GPU
    if workers is None and not gpus and cell_threads:
        workers = max(1, cpus // cell_threads)
        return workers, cell_threads, [None] * workers
    if workers is None:
        workers = gpus * k if gpus else 1  # CPU only: one worker using every core, unless asked
    placement = [i // k % gpus if gpus else None for i in range(workers)]
    return workers, max(1, cpus // workers), placement


def _worker_main(conn, threads: int, gpu: int | None) -> None:
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)  # before CUDA initialises in this process
    from bench.executors.worker import run_job, set_parent_death_signal

    set_parent_death_signal()
    import torch

    from bench.plugins import load_all_methods
    from bench.worker_cache import WorkerCache

    torch.set_num_threads(threads)
    load_all_methods()
    cache = WorkerCache()
    try:
        while True:
            try:
                job = conn.recv()
            except (EOFError, OSError):
                return
            if job is None:
                return
            conn.send(run_job(job, cache))
    except KeyboardInterrupt:
        # Ctrl-C (or `timeout -s INT`) reaches the whole process group: the driver reports the
        # interrupt and its unfinished cells; a traceback per worker would only bury that line
        return


class _Worker:
    def __init__(self, ctx, threads: int, gpu: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, threads, gpu), daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None


class LocalPoolBackend:
    def __init__(self, workers: int, threads: int, placement: list[int | None]):
        self.slots = workers
        self.threads = threads
        self.placement = placement
        self._ctx = mp.get_context("spawn")
        self._workers: list[_Worker | None] = [None] * workers

    def submit(self, job: Job) -> None:
        for i, w in enumerate(self._workers):
            if w is None or not w.process.is_alive():
                w = self._workers[i] = _Worker(self._ctx, self.threads, self.placement[i])
            if w.job is None:
                w.job = job
                w.conn.send(job)
                return
        raise RuntimeError("no idle worker")  # the scheduler never submits more than `slots` jobs

    def wait(self) -> list[tuple[Job, dict]]:
        busy = [w for w in self._workers if w is not None and w.job is not None]
        ready = set(wait_ready([w.conn for w in busy] + [w.process.sentinel for w in busy]))
        ended = []
        for i, w in enumerate(self._workers):
            if w is None or w.job is None or (w.conn not in ready and w.process.sentinel not in ready):
                continue
            outcome = None
            if w.conn.poll():
                try:
                    outcome = w.conn.recv()
                except (EOFError, OSError):
                    outcome = None
            if outcome is None:
                w.process.join(timeout=5)
                outcome = {"lost": f"worker process exited with code {w.process.exitcode}"}
                self._workers[i] = None
            ended.append((w.job, outcome))
            w.job = None
        return ended

    def close(self) -> None:
        for w in self._workers:
            if w is not None and w.process.is_alive():
                try:
                    w.conn.send(None)
                except OSError:
                    pass
        for w in self._workers:
            if w is not None:
                w.process.join(timeout=10)
                if w.process.is_alive():
                    w.process.terminate()
