"""The driver's loop: dispatch a grid's DAG to a backend's workers, retry lost jobs once.

A backend runs jobs somewhere (this process, pool processes, Ray tasks) and reports each
one's outcome: {"record": ...} for a cell, {"done": ...} or {"error": ...} for a model
job, or {"lost": why} when the worker running it died. A lost job is run once more on a
fresh worker; lost twice, a cell is recorded failed and a model job fails the cells that
need it. Cells are claimed before dispatch (bench.grid.CellClaims) so that two grids on
one results folder never run the same cell at once.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from dataclasses import replace
from typing import Iterator, Protocol

from bench.cell import CellSpec, failed_record
from bench.executors.dag import Job, build_dag
from bench.progress import Progress

RETRIES = 1
BUSY_POLL_SECONDS = 1.0


class Backend(Protocol):
    slots: int

    def submit(self, job: Job) -> None: ...

    def wait(self) -> list[tuple[Job, dict]]: ...  # blocks until at least one submitted job ends

    def close(self) -> None: ...


class Claims(Protocol):
    def claim(self, spec: CellSpec) -> str: ...  # "run", "done" (finished elsewhere) or "busy" (running elsewhere)


class RunAll:
    def claim(self, spec: CellSpec) -> str:
        return "run"


class DagExecutor:
    """Runs a grid's DAG on a backend; `map` yields (spec, record) as cells finish, or (spec, None)
    for a cell another grid finished meanwhile."""

    def __init__(self, backend: Backend, progress: Progress, threads: int | None = None):
        self.backend = backend
        self.progress = progress
        self.threads = threads  # per worker; None keeps each cell's profile setting
        self.run_id = uuid.uuid4().hex[:12]

    def _stamp(self, spec: CellSpec) -> CellSpec:
        return replace(spec, run_id=self.run_id, threads=self.threads or spec.threads)

    def map(self, specs: list[CellSpec], claims: Claims | None = None) -> Iterator[tuple[CellSpec, dict | None]]:
        claims = claims or RunAll()
        original = {}
        for spec in specs:
            original[spec.cell_id] = spec
        pending = build_dag([self._stamp(s) for s in specs])
        done: set[str] = set()
        broken: dict[str, str] = {}  # model job key -> why it failed
        attempts: Counter[str] = Counter()
        running: dict[str, Job] = {}
        try:
            while pending or running:
                dispatched, finished_here = self._dispatch(pending, running, done, broken, claims)
                for job, outcome in finished_here:
                    yield original[job.spec.cell_id], outcome["record"]
                if not running:
                    if pending and not dispatched:
                        time.sleep(BUSY_POLL_SECONDS)  # the rest are running in another grid
                    continue
                for job, outcome in self.backend.wait():
                    del running[job.key]
                    if "lost" in outcome:
                        attempts[job.key] += 1
                        if attempts[job.key] <= RETRIES:
                            self.progress.write(f"{job.label}: worker lost ({outcome['lost']}); running it again")
                            pending.insert(0, job)
                            continue
                        outcome = {"error": f"worker lost twice ({outcome['lost']})"}
                    if job.kind != "cell":
                        if "error" in outcome:
                            broken[job.key] = f"{job.label} failed: {outcome['error']}"
                            self.progress.write(broken[job.key])
                        else:
                            done.add(job.key)
                            self.progress.write(f"{job.label}: {'trained' if outcome['trained'] else 'from the checkpoint cache'}")
                        continue
                    record = outcome.get("record") or failed_record(job.spec, outcome.get("error", "no result"))
                    yield original[job.spec.cell_id], record
        finally:
            self.backend.close()

    def _dispatch(self, pending: list[Job], running: dict[str, Job], done: set[str], broken: dict[str, str],
                  claims: Claims) -> tuple[bool, list[tuple[Job, dict]]]:
        """Submit every ready job a slot is free for; cells whose model failed end here, failed."""
        dispatched, finished = False, []
        for job in list(pending):
            if len(running) >= self.backend.slots:
                break
            failed_needs = [broken[n] for n in job.needs if n in broken]
            if failed_needs:
                pending.remove(job)
                finished.append((job, {"record": failed_record(job.spec, failed_needs[0])}))
                continue
            if any(n not in done for n in job.needs):
                continue
            if job.kind == "cell":
                state = claims.claim(job.spec)
                if state == "busy":
                    continue
                if state == "done":
                    pending.remove(job)
                    finished.append((job, {"record": None}))
                    continue
            pending.remove(job)
            self.backend.submit(job)
            running[job.key] = job
            dispatched = True
        return dispatched or bool(finished), finished
