"""bench tune: search spaces, the study loop (resume, pruning, the compute cap), no peeking at D_t,
and tuned values flowing back into profiles."""

from __future__ import annotations

import dataclasses
import statistics

import pytest

from bench import profiles, sgd_fields
from bench.cell import execute_cell
from bench.data.catalog import ImageData
from bench.errors import ConfigError
from bench.grid import InProcessExecutor, method_params, plan
from bench.hparams import Choice, FloatRange, IntRange, build_params
from bench.method import METHODS
from bench.plugins import load_all_methods
from bench.progress import SILENT
from bench.tune import study as st
from bench.tune import tuned
from bench.tune.holdout import Holdout

load_all_methods()
TINY_TRAIN = {"epochs": 1, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
              "milestones": [0.5, 0.75], "gamma": 0.1}


def _space_values(space):
    if isinstance(space, Choice):
        return list(space.values)
    return list(space.bounds())


@pytest.mark.parametrize("name", list(METHODS))
def test_search_spaces_are_valid_for_every_method(name):
    info = METHODS.get(name)
    specs = info.param_specs()
    assert sum(s.main for s in specs) <= 1, "at most one main hyperparameter"
    for spec in specs:
        if spec.search is None:
            continue
        space = spec.search
        if isinstance(space, IntRange):
            assert spec.type is int
        if isinstance(space, FloatRange):
            assert spec.type is float
        for value in _space_values(space):  # both ends (or every choice) are legal values of the field
            build_params(info.cls, {spec.name: value}, name)
    if name in ("Retrain", "Original"):
        assert not any(s.search for s in specs)
    else:
        assert any(s.search for s in specs), f"{name} declares nothing to tune"


def test_shared_sgd_fields_are_one_declaration():
    for name in ("FT", "l1-sparse", "NegGrad+", "SCRUB", "CoUn", "GP"):
        fields = {f.name: f for f in dataclasses.fields(METHODS.get(name).cls)}
        assert fields["lr"].metadata["search"] == sgd_fields.LR_SEARCH
        assert fields["momentum"].metadata == sgd_fields.momentum().metadata
        assert fields["epochs"].metadata["search"] == sgd_fields.EPOCHS_SEARCH
    assert METHODS.get("NegGrad+").param_specs()[1].search.bounds() == (0.95, 0.9999)  # methods.md's beta range


def tiny_profile(tmp_path, **tune):
    raw = {"dataset": "digits", "model": "small_cnn", "device": "cpu", "seeds": [0], "scenarios": ["class3"],
           "smoke": True, "download": False, "threads": 2, "train": TINY_TRAIN, "tuned": "tuned.toml",
           "tune": {"trials": 3, "budget_epochs": 20.0, "max_schedule": 2, "holdout": 0.2, "seed": 1000,
                    "repeats": 2, **tune}}
    return profiles.parse(raw, name="tinytune", source=str(tmp_path / "tinytune.toml"))


def tiny_setup(tmp_path, cache_dir, profile=None, method="RL"):
    profile = profile or tiny_profile(tmp_path)
    return st.setup(profile, METHODS.get(method), "class", device="cpu", data_root=cache_dir / "data",
                    cache_dir=cache_dir, download=False)


def values(study):
    return [(t.number, t.state.name, t.value) for t in study.get_trials()]


def test_tuning_seeds_must_not_be_reported_seeds(tmp_path):
    with pytest.raises(ConfigError, match="overlap the reported seeds"):
        tiny_profile(tmp_path, seed=0)


def test_holdout_slice_is_disjoint_and_recorded():
    h = Holdout(0.2, 1000)
    keep, val = h.indices(100)
    assert len(val) == 20 and len(keep) == 80 and not set(keep.tolist()) & set(val.tolist())
    assert h.describe(100)["validation_hash"] == Holdout(0.2, 1000).describe(100)["validation_hash"]


class Interrupting:
    """An executor that is 'killed' (KeyboardInterrupt) at its k-th cell."""

    def __init__(self, k: int):
        self.inner, self.k, self.calls = InProcessExecutor(SILENT), k, 0

    def map(self, specs):
        for item in self.inner.map(specs):
            self.calls += 1
            if self.calls == self.k:
                raise KeyboardInterrupt
            yield item


def test_tiny_study_runs_end_to_end_and_resumes_after_a_kill(tmp_path):
    cache = tmp_path / "cache"
    s = tiny_setup(tmp_path, cache)
    assert s.seeds == [1000, 1001] and s.scenarios == ["class3"]
    assert s.space["epochs"] == IntRange(1, 2, schedule=True)  # capped by max_schedule
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of its second trial
        st.run_study(s, Interrupting(k=3), trials=3)
    study = st.open_study(s)
    states = [t.state.name for t in study.get_trials()]
    assert states == ["COMPLETE", "FAIL"]
    first = study.get_trials()[0].value

    # a hard kill leaves a RUNNING trial behind: reopening retires it
    study.ask()
    assert [t.state.name for t in st.open_study(s).get_trials()] == ["COMPLETE", "FAIL", "FAIL"]

    study = st.run_study(s, InProcessExecutor(SILENT), trials=3)
    trials = study.get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert trials[0].value == first  # the finished trial was kept, not redone
    for t in (trials[0], trials[3], trials[4]):
        cells = t.user_attrs["cells"]
        assert [(c["scenario"], c["seed"]) for c in cells] == [("class3", 1000), ("class3", 1001)]
        assert t.value == pytest.approx(statistics.fmean(c["avg_gap"] for c in cells))
    assert study.user_attrs["config"]["holdout_seed"] == 1000

    # the tuned profile reproduces the recorded best value
    entry = st.best_entry(s, study)
    assert entry["trials"] == 3 and entry["best_value"] == pytest.approx(study.best_value, abs=1e-6)
    profile = s.profile
    tuned.write(profile.tuned_path, {"RL": {"class": entry}})
    params, provenance = method_params(profile, METHODS.get("RL"), "class", tuned.load(profile.tuned_path))
    assert {k: params[k] for k in entry["params"]} == entry["params"]
    assert provenance["best_value"] == entry["best_value"] and "params" not in provenance
    gaps = [execute_cell(s.cell(params, sc, seed))["metrics"]["avg_gap"] for seed in s.seeds for sc in s.scenarios]
    assert statistics.fmean(gaps) == pytest.approx(entry["best_value"], abs=1e-6)

    # a changed configuration is not silently resumed
    other = dataclasses.replace(s, budget_pflops=s.budget_pflops / 2)
    with pytest.raises(ConfigError, match="another configuration"):
        st.open_study(other)


def test_tuning_never_reads_the_test_set(tmp_path, monkeypatch):
    clean = st.run_study(tiny_setup(tmp_path, tmp_path / "clean"), InProcessExecutor(SILENT), trials=2)

    import bench.data.catalog as cell_module  # workers load data through the catalog (bench.worker_cache)

    real = cell_module.load_dataset

    def poisoned(*args, **kwargs):
        data = real(*args, **kwargs)
        return ImageData(data.spec, data.train_x, data.train_y, 255 - data.test_x, (data.test_y + 1) % 10, data.source)

    monkeypatch.setattr(cell_module, "load_dataset", poisoned)
    dirty = st.run_study(tiny_setup(tmp_path, tmp_path / "dirty"), InProcessExecutor(SILENT), trials=2)
    assert values(dirty) == values(clean)
    def measured(study):  # every metric of every cell; wall-clock aside
        return [[{k: v for k, v in c.items() if k != "unlearn_seconds"} for c in t.user_attrs["cells"]]
                for t in study.get_trials()]

    assert measured(dirty) == measured(clean)
    # and the poison does reach ordinary cells (so the check above can fail)
    profile = tiny_profile(tmp_path)
    cells, _ = plan(profile, [METHODS.get("Original")], data_root=tmp_path / "data", cache_dir=tmp_path / "dirty",
                    download=False)
    record = execute_cell(cells[-1])
    assert record["metrics"]["TA"] < 50


def test_a_trial_over_the_compute_cap_is_pruned_with_its_reason(tmp_path):
    profile = tiny_profile(tmp_path, budget_epochs=0.05, trials=1)
    study = st.run_study(tiny_setup(tmp_path, tmp_path / "cache", profile), InProcessExecutor(SILENT), trials=1)
    (trial,) = study.get_trials()
    assert trial.state.name == "PRUNED"
    assert trial.user_attrs["pruned_reason"].startswith("BudgetExceeded: compute cap reached")


def test_plan_applies_tuned_values_per_kind_and_set_still_overrides(tmp_path):
    profile = profiles.parse({"dataset": "digits", "model": "small_cnn", "device": "cpu", "smoke": True,
                              "scenarios": ["random10", "class"], "tuned": "tuned.toml"},
                             name="p", source=str(tmp_path / "p.toml"))
    entry = {"params": {"lr": 0.05, "epochs": 3}, "study": "p/RL/class", "best_value": 1.5, "budget": "12 trials"}
    tuned.write(profile.tuned_path, {"RL": {"class": entry}})
    assert tuned.load(profile.tuned_path)["RL"]["class"] == entry  # round trip, exact floats
    cells, _ = plan(profile, [METHODS.get("RL")], data_root=tmp_path, cache_dir=tmp_path, download=False,
                    overrides={"RL": {"epochs": "7"}})
    rl = {c.scenario: c for c in cells if c.method == "RL"}
    assert rl["class9"].params["lr"] == 0.05 and rl["class9"].params["epochs"] == 7
    assert rl["class9"].tuned == {"study": "p/RL/class", "best_value": 1.5, "budget": "12 trials", "overridden": ["epochs"]}
    assert rl["random10"].params["lr"] == METHODS.get("RL").params().lr and rl["random10"].tuned is None


class Scripted:
    """An executor whose cells 'score' a fixed function of the trial's lr (study mechanics only, no training)."""

    def map(self, specs):
        import math

        for spec in specs:
            gap = 10 * abs(math.log10(spec.params["lr"]) - math.log10(0.005))
            yield spec, {"status": "ok", "metrics": {"avg_gap": gap, "RA": 0.0, "UA": 0.0, "TA": 0.0, "MIA": 0.0},
                         "cost": {"pflops": 0.0}, "timing": {"unlearn_seconds": 0.0}}


@pytest.mark.parametrize("repeats", [2, 1])
def test_median_pruner_stops_hopeless_trials_between_cells_never_a_finished_one(tmp_path, repeats):
    s = tiny_setup(tmp_path, tmp_path / "cache", tiny_profile(tmp_path, repeats=repeats))
    study = st.run_study(s, Scripted(), trials=16)
    trials = study.get_trials()
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert len(trials) == 16 and len(pruned) + len(complete) == 16
    if repeats == 1:  # a one-cell trial has nothing left to save: it always completes
        assert not pruned
        return
    assert pruned, "some hopeless trial should have been stopped after its first cell"
    for t in pruned:
        assert len(t.user_attrs["cells"]) == 1 and t.user_attrs["pruned_reason"].startswith("median pruner after 1 cell")
        earlier = [u.intermediate_values[0] for u in trials[: t.number] if u.state.name == "COMPLETE"]
        assert t.intermediate_values[0] > statistics.median(earlier)
    assert all(len(t.user_attrs["cells"]) == 2 for t in complete)
    assert all(t.number >= st.STARTUP_TRIALS for t in pruned)


def test_report_gives_best_spread_and_a_deterministic_plot(tmp_path):
    from bench.tune import report

    s = tiny_setup(tmp_path, tmp_path / "cache", tiny_profile(tmp_path, repeats=1))
    study = st.run_study(s, Scripted(), trials=6)
    row = report.summarize(study, "lr")
    values = [t.value for t in study.get_trials()]
    assert row["complete"] == 6 and row["pruned"] == 0
    assert row["best"] == min(values) and row["worst"] == max(values)
    assert row["median"] == statistics.median(values) and row["std"] == pytest.approx(statistics.pstdev(values))
    assert row["best_params"] == study.best_params and len(row["points"]) == 6
    first = report.write_report([row], tmp_path / "a", "# t")
    second = report.write_report([row], tmp_path / "b", "# t")
    assert [p.name for p in first] == ["tune_report.md", "objective_vs_main_hparam.png", "objective_vs_main_hparam.svg"]
    for a, b in zip(first, second):
        assert a.read_bytes() == b.read_bytes(), a.name
    assert f"| {s.name} | 6 + 0 | {min(values):.3f} |" in first[0].read_text()
    # a study whose every trial was pruned before reporting a value is listed, not drawn
    hopeless = {**row, "study": "t/X/class", "points": [(0.1, None, False)], "best": None}
    with_hopeless = report.write_report([row, hopeless], tmp_path / "c", "# t")
    assert [p.read_bytes() for p in with_hopeless[1:]] == [p.read_bytes() for p in first[1:]]


def test_tune_runs_the_profiles_task_methods_and_presets_only_by_name():
    from bench.tune.command import tunable_methods

    names = [m.name for m in tunable_methods("classify", None)]
    assert {"CU", "HCU", "RL", "SCRUB", "GP"} <= set(names)
    assert not {"Retrain", "Original", "CU-euclid-ref", "HCU-scaled", "AC-IT", "HAC", "FT-SSL"} & set(names)
    assert [m.name for m in tunable_methods("classify", ["CU-euclid-ref"])] == ["CU-euclid-ref"]
    assert "FT-SSL" in [m.name for m in tunable_methods("ssl", None)]
