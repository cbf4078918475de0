"""Records are written atomically, one per cell; an interrupted grid resumes without loss or duplicates."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from bench import atomic, profiles
from bench.cell import execute_cell
from bench.grid import InProcessExecutor, plan, run_grid
from bench.method import resolve_methods
from bench.progress import SILENT
from bench.records import RecordStore

TINY = {
    "dataset": "digits", "model": "small_cnn", "device": "cpu", "seeds": [0], "scenarios": ["random10", "class3"],
    "methods": ["Original", "FT"], "download": False,
    "train": {"epochs": 3, "batch_size": 128, "lr": 0.1},
    "params": {"FT": {"epochs": 1}},
}


def _cells(cache_dir, raw=TINY):
    profile = profiles.parse(raw, name="tiny")
    cells, _ = plan(profile, resolve_methods(list(profile.methods)), data_root=cache_dir / "data", cache_dir=cache_dir)
    return cells


class InterruptedAfter:
    """Runs `n` cells, then behaves like a Ctrl-C."""

    def __init__(self, n):
        self.n = n

    def map(self, specs, claims=None):
        for i, spec in enumerate(specs):
            if i == self.n:
                raise KeyboardInterrupt
            yield spec, execute_cell(spec)


def _snapshot(store):
    return {p.name: p.read_bytes() for p in store.records_dir.glob("*.json")}


def test_interrupted_grid_resumes_without_loss_or_duplicates(tmp_path, cache_dir):
    cells = _cells(cache_dir)
    assert len(cells) == 6 and len({c.cell_id for c in cells}) == 6  # Retrain is always added
    store = RecordStore(tmp_path / "results")
    with pytest.raises(KeyboardInterrupt):
        run_grid(cells, store, InterruptedAfter(2), SILENT)
    before = _snapshot(store)
    assert len(before) == 2

    summary = run_grid(cells, store, InProcessExecutor(SILENT), SILENT)
    assert (summary.ran, summary.skipped, summary.failed) == (4, 2, [])
    after = _snapshot(store)
    assert sorted(after) == sorted(f"{c.cell_id}.json" for c in cells)
    assert all(after[name] == data for name, data in before.items())  # finished cells untouched
    assert not list(store.records_dir.glob(".*tmp"))  # no temporary leftovers

    again = run_grid(cells, store, InProcessExecutor(SILENT), SILENT)
    assert (again.ran, again.skipped) == (0, 6)
    forced = run_grid(cells[:2], store, InProcessExecutor(SILENT), SILENT, force=True)
    assert forced.ran == 2


def test_a_changed_configuration_is_not_skipped(tmp_path, cache_dir):
    store = RecordStore(tmp_path / "results")
    run_grid(_cells(cache_dir), store, InProcessExecutor(SILENT), SILENT)
    changed = {**TINY, "params": {"FT": {"epochs": 2}}}
    summary = run_grid(_cells(cache_dir, changed), store, InProcessExecutor(SILENT), SILENT)
    assert summary.ran == 2  # the two FT cells, whose hyperparameters changed
    record = json.loads(next(store.records_dir.glob("FT__*.json")).read_text())
    assert record["params"]["epochs"] == 2


def test_a_record_of_other_code_is_rerun_unless_older_code_is_kept(tmp_path, cache_dir):
    from bench.cell import record_envelope

    cells = _cells(cache_dir)
    ft = next(c for c in cells if c.method == "FT" and c.scenario == "random10")
    store = RecordStore(tmp_path / "results")
    old = record_envelope(ft)
    old["config"]["code"], old["config_hash"] = "0123456789abcdef", "older"  # made by other code
    store.write({**old, "status": "ok"})
    assert not store.is_done(ft)
    keep = RecordStore(tmp_path / "results", keep_older_code=True)
    assert keep.is_done(ft)
    other = dataclasses.replace(ft, params={**ft.params, "epochs": 2})  # other settings: never kept
    assert not keep.is_done(other) and not keep.is_done(dataclasses.replace(ft, seed=1))
    summary = run_grid(cells, keep, InProcessExecutor(SILENT), SILENT)
    assert summary.skipped == 1 and summary.ran == len(cells) - 1
    assert store.read(ft.cell_id)["config_hash"] == "older"  # kept as it was


def test_a_failed_write_leaves_the_old_record_and_no_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "records" / "cell.json"
    atomic.write_json(target, {"v": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        atomic.write_json(target, {"v": 2})
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in target.parent.iterdir()] == ["cell.json"]


def test_an_unreadable_record_is_rerun(tmp_path, cache_dir):
    cells = _cells(cache_dir)[:2]  # Retrain and Original on random10
    store = RecordStore(tmp_path / "results")
    run_grid(cells, store, InProcessExecutor(SILENT), SILENT)
    store.path(cells[0].cell_id).write_text("{ truncated")
    summary = run_grid(cells, store, InProcessExecutor(SILENT), SILENT)
    assert (summary.ran, summary.skipped) == (1, 1)


def test_written_files_are_readable_by_others(tmp_path):
    path = tmp_path / "shared.json"
    atomic.write_json(path, {"v": 1})
    assert path.stat().st_mode & 0o044 == 0o044  # group/other read, under the usual umask 022
