"""One worker: this process, one job at a time (the default on a CPU-only machine)."""

from __future__ import annotations

from bench.executors.dag import Job
from bench.executors.worker import run_job
from bench.progress import Progress
from bench.worker_cache import WorkerCache


class InProcessBackend:
    slots = 1

    def __init__(self, progress: Progress):
        self.progress = progress
        self.cache = WorkerCache()
        self._job: Job | None = None

    def submit(self, job: Job) -> None:
        self._job = job

    def wait(self) -> list[tuple[Job, dict]]:
        job, self._job = self._job, None
        return [(job, run_job(job, self.cache, self.progress))]

    def close(self) -> None:
        pass
