"""Replicas as ordinary cells, stored outputs, and `bench audit` end to end on a tiny CPU profile."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import profiles
from bench.cli import main
from bench.grid import plan
from bench.method import resolve_methods

TINY_PROFILE = """
description = "audit test: digits, one-epoch recipe, 3 replicas"
dataset = "digits"
model = "small_cnn"
device = "cpu"
seeds = [0]
scenarios = ["random10", "class"]
methods = ["Retrain", "Original", "GA"]
threads = 2
download = false
smoke = true

[train]
epochs = 1
lr = 0.1
batch_size = 128

[audit]
replicas = 3
scenarios = ["random10"]
sample = 40
"""


def _profile(tmp_path: Path) -> Path:
    path = tmp_path / "tiny-audit.toml"
    path.write_text(TINY_PROFILE)
    return path


def test_replicas_are_plain_cells_and_replica_zero_keeps_its_identity(tmp_path):
    profile = profiles.load(str(_profile(tmp_path)))
    assert profile.audit.replicas == 3 and profile.audit.scenarios == ("random10",)
    cells, _ = plan(profile, resolve_methods(list(profile.methods)), data_root=tmp_path, cache_dir=tmp_path)
    by_scenario = {s: [c for c in cells if c.scenario == s] for s in ("random10", "class9")}
    assert sorted((c.method, c.replica) for c in by_scenario["random10"]) == sorted(
        (m, r) for m in ("Retrain", "Original", "GA") for r in range(3))
    assert {c.replica for c in by_scenario["class9"]} == {0}  # only the audit's scenarios get replicas
    ids = [c.cell_id for c in cells]
    assert len(set(ids)) == len(ids) and "GA__digits__small_cnn__random10__seed0__rep2" in ids
    zero = next(c for c in cells if c.method == "GA" and c.replica == 0 and c.scenario == "random10")
    assert "replica" not in zero.identity() and zero.cell_id.endswith("seed0")
    two = dataclasses.replace(zero, replica=2)
    assert two.identity()["replica"] == 2 and two.config_hash != zero.config_hash
    no_audit, _ = plan(profile, resolve_methods(list(profile.methods)), data_root=tmp_path, cache_dir=tmp_path, replicas=0)
    assert {c.replica for c in no_audit} == {0}


def test_bad_audit_settings_are_one_line_errors(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(TINY_PROFILE.replace("replicas = 3", "replicas = -1"))
    with pytest.raises(Exception, match=r"replicas must be 0 or 1 \(no audit\) or >= 3"):
        profiles.load(str(path))
    path.write_text(TINY_PROFILE)  # K = 2 would train replicas the audit cannot use (it needs K - 1 >= 2 to fit)
    assert profiles.load(str(path)).audit.replicas == 3
    path.write_text(TINY_PROFILE.replace("replicas = 3", "replicas = 2"))
    with pytest.raises(Exception, match=r"\[audit\].*replicas must be 0 or 1 \(no audit\) or >= 3 .*got 2"):
        profiles.load(str(path))
    profile = profiles.load(str(_profile(tmp_path)))
    with pytest.raises(Exception, match=r"--replicas: replicas must be 0 or 1 \(no audit\) or >= 3 .*got 2"):
        plan(profile, resolve_methods(list(profile.methods)), data_root=tmp_path, cache_dir=tmp_path, replicas=2)
    assert {c.replica for c in plan(profile, resolve_methods(list(profile.methods)), data_root=tmp_path,
                                    cache_dir=tmp_path, replicas=1)[0]} == {0}
    path.write_text(TINY_PROFILE.replace("sample = 40", "sampel = 40"))
    with pytest.raises(Exception, match=r"unknown key 'sampel'"):
        profiles.load(str(path))


def test_audit_end_to_end_on_a_tiny_profile(tmp_path, cache_dir, capsys):
    results = tmp_path / "results"
    path = _profile(tmp_path)
    path.write_text(TINY_PROFILE.replace('scenarios = ["random10", "class"]', 'scenarios = ["random10"]'))
    args = ["run", "--profile", str(path), "--results", str(results), "--cache-dir", str(cache_dir),
            "--offline", "--no-progress"]
    assert main(args) == 0
    records = results / "records"
    rep = json.loads((records / "Retrain__digits__small_cnn__random10__seed0__rep2.json").read_text())
    assert rep["cell"]["replica"] == 2 and rep["config"]["replica"] == 2
    stored = np.load(records / rep["outputs"]["file"])
    assert stored["forget_logits"].shape == (144, 10) and stored["retain_logits"].shape == (40, 10)
    assert stored["test_logits"].shape == (40, 10)

    table = pd.read_csv(results / "audit.csv")
    assert list(table["method"]) == ["Retrain", "Original", "GA"] and set(table["replicas"]) == {3}
    original = table.set_index("method").loc["Original"]
    # the Original's replicas are one model: a point mass against Retrain's spread -> epsilon capped -> F = 0
    assert original["F"] == 0.0 and original["final_score"] == 0.0
    assert table.set_index("method").loc["Retrain", "retrain_noise_avg_gap"] > 0  # other seeds, other models
    summary = (results / "summary.md").read_text()
    assert "U-LiRA AUC" in summary and "Retrain replicas' Avg-Gap to Retrain" in summary
    assert "(seeds 0;" in summary  # replicas are not counted as seeds

    # every score is a function of the stored outputs: a second audit writes the same bytes
    first = {p.name: p.read_bytes() for p in [results / "audit.csv", results / "audit_examples.csv",
                                               results / "figures" / "audit_epsilon.svg"]}
    assert main(["audit", "--results", str(results)]) == 0
    again = {name: (results / ("figures" if name.endswith(".svg") else "") / name).read_bytes() for name in first}
    assert again == first
    assert "KLoM" in capsys.readouterr().out

    # a tampered outputs file is refused, with what to do
    path = records / rep["outputs"]["file"]
    path.write_bytes(path.read_bytes()[:-1] + b"x")
    assert main(["audit", "--results", str(results)]) == 2
    assert "does not match the hash" in capsys.readouterr().err


def test_a_forget_sample_caps_the_stored_forget_outputs_at_the_same_samples_for_every_cell(tmp_path, cache_dir):
    from bench.cell import execute_cell
    from bench.outputs import read_outputs
    from bench.records import RecordStore

    path = tmp_path / "capped.toml"
    path.write_text(TINY_PROFILE.replace("replicas = 3", "replicas = 0").replace(
        "sample = 40", "sample = 40\nforget_sample = 25"))
    profile = profiles.load(str(path))
    assert profile.audit.forget_sample == 25
    cells, _ = plan(profile, resolve_methods(["Original", "GA"]), data_root=tmp_path, cache_dir=cache_dir,
                    scenarios=["random10"])
    store = RecordStore(tmp_path / "results")
    forget_index = {}
    for spec in cells:
        assert spec.identity()["outputs_forget_sample"] == 25
        record = execute_cell(spec)
        assert record["status"] == "ok", record.get("traceback")
        store.write(record)
        arrays = read_outputs(store.records_dir, record["outputs"])
        assert arrays["forget_logits"].shape == (25, 10) and arrays["test_logits"].shape == (40, 10)
        forget_index[spec.method] = arrays["forget_index"].tolist()
    assert record["split"]["n_forget"] == 144  # the metrics still use all of D_f
    first = forget_index.pop("Retrain")
    assert all(index == first for index in forget_index.values()) and first == sorted(first)
    uncapped = dataclasses.replace(cells[0], outputs_forget_sample=0)
    assert "outputs_forget_sample" not in uncapped.identity()  # the default keeps every hash as it was
