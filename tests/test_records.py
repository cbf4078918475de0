"""A failed cell always leaves a record, whatever its numbers (issue 11): non-finite values are
written as strings that float() reads back, other objects as numbers or text."""

from __future__ import annotations

import dataclasses
import json
import math

import torch

from bench.cli import main
from bench.method import METHODS, MethodInfo
from bench.records import RecordStore, jsonable
from bench.reports.frame import load_records, records_frame


def test_jsonable_keeps_every_value_readable():
    record = {"a": float("nan"), "b": [float("inf"), -math.inf, 1.5, 2, True, None, "x"],
              "t": torch.tensor(0.25), "v": torch.tensor([1.0, 2.0]), 3: (1, 2)}
    out = jsonable(record)
    assert out == {"a": "NaN", "b": ["Infinity", "-Infinity", 1.5, 2, True, None, "x"], "t": 0.25,
                   "v": "tensor([1., 2.])", "3": [1, 2]}
    assert math.isnan(float(out["a"])) and float(out["b"][0]) == math.inf and float(out["b"][1]) == -math.inf
    json.dumps(out, allow_nan=False)  # strict JSON


def test_a_record_with_non_finite_numbers_is_written_and_read_back(tmp_path):
    store = RecordStore(tmp_path)
    store.write({"cell_id": "x", "status": "failed", "params": {"lr": float("nan")}, "error": "diverged"})
    assert store.read("x")["params"]["lr"] == "NaN"
    assert [r["cell_id"] for r in store.all()] == ["x"]


@dataclasses.dataclass(frozen=True)
class NotesNaN:
    """A method that notes non-finite facts and tensors, then diverges."""

    def run(self, ctx):
        ctx.note(loss=float("nan"), scale=torch.tensor(float("inf")), history=[1.0, float("-inf")])
        with torch.no_grad():
            next(ctx.model.parameters()).fill_(float("inf"))


@dataclasses.dataclass(frozen=True)
class NotesTensor:
    """A method that finishes and notes a tensor (not JSON by itself)."""

    def run(self, ctx):
        ctx.note(steps=torch.tensor(3), ratio=float("nan"))


def test_cells_with_non_finite_facts_leave_records_and_the_grid_goes_on(tmp_path, cache_dir, monkeypatch, capsys):
    for name, cls in (("NotesNaN", NotesNaN), ("NotesTensor", NotesTensor)):
        monkeypatch.setitem(METHODS._entries, name, MethodInfo(name, cls, cls.__doc__, ("random", "class")))
    profile = tmp_path / "tiny.toml"
    profile.write_text('dataset = "digits"\nmodel = "small_cnn"\ndevice = "cpu"\nscenarios = ["random10"]\n'
                       'download = false\n[train]\nepochs = 3\nbatch_size = 128\n')
    results = tmp_path / "results"
    code = main(["run", "--profile", str(profile), "--methods", "NotesNaN,NotesTensor", "--results", str(results),
                 "--cache-dir", str(cache_dir), "--no-progress"])
    assert code == 1  # one failed cell; the grid finished and the tables were written
    records = {r["cell"]["method"]: r for r in load_records(results)}
    assert set(records) == {"Retrain", "NotesNaN", "NotesTensor"}
    assert records["NotesNaN"]["status"] == "failed" and "diverged" in records["NotesNaN"]["error"]
    ok = records["NotesTensor"]
    assert ok["status"] == "ok" and ok["method_info"] == {"steps": 3.0, "ratio": "NaN"}
    assert len(records_frame(load_records(results))) == 2  # readers cope
    assert (results / "summary.md").is_file()
