"""The task seam: a kind of task registers once, and profiles, planning, cells and records
dispatch to it; methods that do not declare the task are left out with a note."""

from __future__ import annotations

import dataclasses

import pytest

from bench import profiles
from bench.cell import CellSpec, execute_cell, record_envelope
from bench.errors import ConfigError
from bench.grid import plan
from bench.hparams import hp
from bench.method import METHODS, resolve_methods
from bench.tasks import CLASSIFY, TASKS, TaskInfo, register_task


@dataclasses.dataclass(frozen=True)
class ToyParams:
    members: int = hp(10, low=1, doc="how many members")


def toy_runner(spec: CellSpec, progress=None) -> dict:
    """A task whose metric is a pure function of the spec, so the dispatch is visible."""
    score = float(spec.task_params["members"] + spec.seed)
    return {**record_envelope(spec), "status": "ok", "metrics": {"score": score, "avg_gap": 0.0}}


@pytest.fixture
def toy_task():
    info = register_task(TaskInfo(name="toy", summary="a test task", gap_metrics=("score",),
                                  runner=f"{__name__}:toy_runner", params_cls=ToyParams))
    yield info
    TASKS._entries.pop("toy")


def _profile(**extra):
    raw = {"dataset": "digits", "model": "small_cnn", "device": "cpu", "scenarios": ["random10"], **extra}
    return profiles.parse(raw, name="t")


def test_classify_is_the_default_task_and_every_classifier_method_supports_it():
    assert _profile().task == CLASSIFY and TASKS.get(CLASSIFY).gap_metrics == ("RA", "UA", "TA", "MIA")
    # every method but the ssl and imagetext tasks' own methods runs on classifiers
    assert {n for n in METHODS if not METHODS.get(n).supports_task(CLASSIFY)} == {
        "FT-SSL", "GA-SSL", "AC-SSL", "AC-IT", "FT-IT", "HAC"}


def test_profile_validates_the_task_and_its_params(toy_task):
    with pytest.raises(ConfigError, match="unknown task 'tyo'.*did you mean toy"):
        _profile(task="tyo")
    with pytest.raises(ConfigError, match="has no hyperparameter 'membres'"):
        _profile(task="toy", task_params={"membres": 3})
    with pytest.raises(ConfigError, match="below the minimum"):
        _profile(task="toy", task_params={"members": 0})
    with pytest.raises(ConfigError, match="takes no \\[task_params\\]"):
        _profile(task_params={"members": 3})
    assert _profile(task="toy", task_params={"members": 3}).task_params == {"members": 3}


def test_plan_keeps_only_methods_of_the_task_and_cells_dispatch_to_it(toy_task, tmp_path):
    profile = _profile(task="toy", task_params={"members": 3})
    cells, notes = plan(profile, resolve_methods(["Retrain", "Original", "FT"]), data_root=tmp_path, cache_dir=tmp_path)
    assert [c.method for c in cells] == ["Retrain", "Original"]  # they declare every task; FT only classify
    assert notes == ["not for the toy task, skipped: FT"]
    record = execute_cell(cells[1])
    assert record["status"] == "ok" and record["task"] == "toy" and record["gap_metrics"] == ["score"]
    assert record["metrics"]["score"] == 3.0


def test_task_and_its_params_are_part_of_a_cells_identity(toy_task, tmp_path):
    a, b = (dataclasses.replace(plan(_profile(task="toy", task_params={"members": m}), resolve_methods(["Original"]),
                                     data_root=tmp_path, cache_dir=tmp_path)[0][0]) for m in (3, 4))
    classify = plan(_profile(), resolve_methods(["Original"]), data_root=tmp_path, cache_dir=tmp_path)[0][0]
    assert len({a.config_hash, b.config_hash, classify.config_hash}) == 3
