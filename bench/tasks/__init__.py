"""Kinds of task: what a cell trains, unlearns and measures.

The harness (profiles, planning, cells, records, executors, reports) is shared; a task
supplies what differs: its models and their Original/Retrain training, the context its
methods run in, and its metrics. `classify` (supervised image classifiers: RA, UA, TA,
MIA) is the built-in task and runs through `bench.cell.run_classifier_cell`; other tasks
live in modules of this package and register themselves with `register_task`:

    register_task(TaskInfo(
        name="ssl", summary="self-supervised encoders (SimCLR, MoCo, BYOL), EncoderMI audit",
        gap_metrics=("probe_acc", "knn_acc", "mia_acc", ...),
        runner="bench.tasks.ssl.cell:run_ssl_cell",   # (CellSpec, Progress) -> record (status "ok")
        params_cls=SSLTaskParams,                       # the profile's [task_params] table
    ))

A method declares the tasks it supports (`register_method(..., tasks=("classify", "ssl"))`);
the planner skips the others with a note. A task's runner returns a complete record:
`bench.cell.record_envelope(spec)` gives the shared identification fields, and the record
adds "status", "metrics" (the task's metrics plus "avg_gap" over `gap_metrics`),
"retrain_reference", "cost", "timing", "environment", "code", "created".
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from bench.errors import ConfigError
from bench.hparams import build_params
from bench.registry import Registry

CLASSIFY = "classify"
ANY_TASK = "*"  # what Retrain and Original declare: every task has its own Retrain and Original


@dataclass(frozen=True)
class TaskInfo:
    name: str
    summary: str
    gap_metrics: tuple[str, ...]  # the metrics Avg-Gap averages |metric - Retrain's| over
    runner: str  # "module:function", imported when a cell of this task runs
    params_cls: type | None = None  # a dataclass of hp(...) fields: the profile's [task_params]
    model_names: tuple[str, ...] = ()  # the model names the task accepts; empty: bench.models.MODELS

    def check_model(self, name: str) -> None:
        """A ConfigError unless `name` is a model this task can build."""
        if not self.model_names:
            from bench.models import MODELS

            MODELS.get(name)
        elif name not in self.model_names:
            raise ConfigError(f"task {self.name} has no model {name!r}; known: {', '.join(self.model_names)}")
    # the task's own model names (a cell's `model`), when it does not use bench.models; a profile
    # naming none of them plans a cell per model. A method class may list the ones it supports
    # in a `models` attribute (e.g. HAC: ("meru",)); the planner skips the rest with a note.
    models: tuple[str, ...] = ()
    # "module:function" (records, results_dir) -> Markdown: the task's own summary table, written by
    # `bench run` instead of the classifier table (None: the classifier table)
    summary_writer: str | None = None

    def run_function(self) -> Callable[..., dict]:
        module, _, function = self.runner.partition(":")
        return getattr(importlib.import_module(module), function)

    def write_summary(self, records, results_dir) -> str:
        module, _, function = (self.summary_writer or "").partition(":")
        return getattr(importlib.import_module(module), function)(records, results_dir)

    def params(self, raw: Mapping[str, Any] | None) -> dict[str, Any]:
        """The task's settings from a profile's [task_params] table, validated, as plain data."""
        import dataclasses

        raw = dict(raw or {})
        if self.params_cls is None:
            if raw:
                raise ConfigError(f"task {self.name} takes no [task_params]; got {', '.join(raw)}")
            return {}
        return dataclasses.asdict(build_params(self.params_cls, raw, f"task {self.name} [task_params]"))


TASKS: Registry[TaskInfo] = Registry("task")


def register_task(info: TaskInfo) -> TaskInfo:
    return TASKS.add(info.name, info)


register_task(TaskInfo(
    name=CLASSIFY,
    summary="supervised image classifiers: RA, UA, TA, MIA-efficacy against Retrain",
    gap_metrics=("RA", "UA", "TA", "MIA"),
    runner="bench.cell:run_classifier_cell",
))


def supports(declared: tuple[str, ...], task: str) -> bool:
    return ANY_TASK in declared or task in declared
