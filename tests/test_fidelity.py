"""Tests that catch real metric and method bugs (issue 12): the exact sets the MIA sees, the
Retrain each cell is paired with, evaluation mode and precision, FLOPs against recorded
counts, the code fingerprint in a cell's identity, and what defines a few methods."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import bench.metrics as metrics_module
from bench.cell import run_cell
from bench.data.catalog import Augment
from bench.data.device_data import DeviceData
from bench.engine import Engine, TrainRecipe
from bench.flops import cost_model, forward_macs
from bench.method import METHODS
from bench.metrics import EvalSets, avg_gap, evaluate, gap_of_means, hold_out_nonmembers, mia_efficacy
from bench.models import build_model
from bench.records import RecordStore
from bench.reports.frame import records_frame
from bench.reports.tables import summary_table

# ---------------------------------------------------------------------- the MIA's exact sets


class PixelLogits(torch.nn.Module):
    """Logit of class 0 = the pixel value / 10, other classes 0: every sample has its own,
    known true-label confidence, so the arrays handed to the SVC identify the samples."""

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 10)
        logits[:, 0] = x[:, 0, 0, 0] * 255 / 10
        return logits


def _data(pixels, labels, name):
    images = torch.tensor(pixels, dtype=torch.uint8).view(-1, 1, 1, 1)
    return DeviceData(images, torch.tensor(labels), torch.arange(len(labels)), name)


def _confidence(pixels, labels):
    logits = torch.zeros(len(pixels), 10)
    logits[:, 0] = torch.tensor(pixels, dtype=torch.float32) / 10
    return torch.softmax(logits, 1)[torch.arange(len(pixels)), torch.tensor(labels)].numpy()


def _spy_mia(monkeypatch):
    seen = {}

    def spy(member, nonmember, target):
        seen.update(member=member, nonmember=nonmember, target=target)
        return mia_efficacy(member, nonmember, target)

    monkeypatch.setattr(metrics_module, "mia_efficacy", spy)
    return seen


def test_mia_members_are_the_first_test_size_retain_samples_non_members_the_test_set_targets_the_forget_set(monkeypatch):
    retain_px, retain_y = [10, 20, 30, 40, 50, 60, 70], [0, 1, 0, 2, 0, 0, 1]
    test_px, test_y = [15, 25, 35], [0, 0, 3]
    forget_px, forget_y = [5, 45], [0, 4]
    seen = _spy_mia(monkeypatch)
    sets = EvalSets.build(_data(retain_px, retain_y, "retain"), _data(forget_px, forget_y, "forget"),
                          _data(test_px, test_y, "test"), None)
    evaluate(Engine("cpu", (0.0,), (1.0,), Augment(0, False)), PixelLogits(), sets)
    np.testing.assert_allclose(seen["member"], _confidence(retain_px[:3], retain_y[:3]), rtol=1e-6)
    np.testing.assert_allclose(seen["nonmember"], _confidence(test_px, test_y), rtol=1e-6)
    np.testing.assert_allclose(seen["target"], _confidence(forget_px, forget_y), rtol=1e-6)


def test_classwise_mia_uses_the_remaining_classes_test_set_and_as_many_retain_samples(monkeypatch):
    retain_px, retain_y = [10, 20, 30, 40, 50, 60], [0, 1, 0, 2, 0, 1]
    test_px, test_y = [15, 25, 35, 45, 55], [3, 0, 3, 1, 2]  # class 3 is forgotten
    forget_px, forget_y = [5, 65, 75], [3, 3, 3]
    seen = _spy_mia(monkeypatch)
    sets = EvalSets.build(_data(retain_px, retain_y, "retain"), _data(forget_px, forget_y, "forget"),
                          _data(test_px, test_y, "test"), forget_class=3)
    assert sets.test.labels.tolist() == [0, 1, 2] and sets.forget_class_test.labels.tolist() == [3, 3]
    out = evaluate(Engine("cpu", (0.0,), (1.0,), Augment(0, False)), PixelLogits(), sets)
    np.testing.assert_allclose(seen["member"], _confidence(retain_px[:3], retain_y[:3]), rtol=1e-6)
    np.testing.assert_allclose(seen["nonmember"], _confidence([25, 45, 55], [0, 1, 2]), rtol=1e-6)
    np.testing.assert_allclose(seen["target"], _confidence(forget_px, forget_y), rtol=1e-6)
    assert out["TA"] == pytest.approx(100 / 3) and out["forget_class_TA"] == 0.0  # only class 0 is ever predicted


def test_nonmember_pool_is_a_seeded_half_disjoint_from_everything_evaluated():
    test = _data(list(range(40)), [i % 10 for i in range(40)], "test")
    kept, pool = hold_out_nonmembers(test, "test-half", seed=3)
    assert len(kept) == len(pool) == 20 and not set(kept.index.tolist()) & set(pool.index.tolist())
    assert set(kept.index.tolist()) | set(pool.index.tolist()) == set(range(40))
    again, pool_again = hold_out_nonmembers(test, "test-half", seed=3)
    assert torch.equal(pool.index, pool_again.index) and kept.name == "test"
    assert not torch.equal(pool.index, hold_out_nonmembers(test, "test-half", seed=4)[1].index)
    whole, none = hold_out_nonmembers(test, "none", seed=3)
    assert whole is test and none is None
    sets = EvalSets.build(_data([1], [0], "retain"), _data([2], [0], "forget"), kept, forget_class=3, nonmember_pool=pool)
    assert not set(pool.index.tolist()) & (set(sets.test.index.tolist()) | set(sets.forget_class_test.index.tolist()))
    assert sets.describe()["nonmember_pool"]["size"] == 20


# ---------------------------------------------------------------------- each cell and its Retrain


def test_every_cell_is_paired_with_the_retrain_of_its_own_split_and_seed(tiny_spec, tmp_path):
    cells = [("random10", 0), ("random10", 1), ("class3", 0)]
    retrain, ft = {}, {}
    for scenario, seed in cells:
        retrain[scenario, seed] = run_cell(tiny_spec("Retrain", scenario, seed))
        ft[scenario, seed] = run_cell(tiny_spec("FT", scenario, seed, params={"epochs": 1}))
    for key in cells:
        own = {k: retrain[key]["metrics"][k] for k in ("RA", "UA", "TA", "MIA")}
        assert retrain[key]["metrics"]["avg_gap"] == 0.0  # Retrain's own gap
        assert {k: ft[key]["retrain_reference"][k] for k in own} == own
        assert ft[key]["metrics"]["avg_gap"] == pytest.approx(avg_gap(ft[key]["metrics"], own), abs=1e-12)
        for other in cells:
            if other != key:
                assert {k: retrain[other]["metrics"][k] for k in own} != own  # the pairing is visible
    store = RecordStore(tmp_path)
    for record in [*retrain.values(), *ft.values()]:
        store.write(record)
    summary = summary_table(records_frame(store.all())).set_index(["scenario", "method"])
    assert summary.loc[("random10", "Retrain"), "avg_gap_of_means"] == 0.0
    both = [ft["random10", s] for s in (0, 1)]
    expected = gap_of_means([r["metrics"] for r in both], [r["retrain_reference"] for r in both])
    assert summary.loc[("random10", "FT"), "avg_gap_of_means"] == pytest.approx(expected)


def test_gap_of_means_is_couns_form():
    ft = {"RA": 99.99, "UA": 3.76, "TA": 94.70, "MIA": 9.51}  # CoUn Table 2, C10-RN18-10%
    retrain = {"RA": 100.00, "UA": 4.81, "TA": 94.67, "MIA": 11.02}
    assert gap_of_means([ft], [retrain]) == pytest.approx((0.01 + 1.05 + 0.03 + 1.51) / 4) == pytest.approx(0.65)
    # two seeds whose errors cancel: zero gap of the means, a positive mean of the per-seed gaps
    high, low = {k: v + 1 for k, v in retrain.items()}, {k: v - 1 for k, v in retrain.items()}
    assert gap_of_means([high, low], [retrain, retrain]) == pytest.approx(0.0, abs=1e-12)
    assert np.mean([avg_gap(high, retrain), avg_gap(low, retrain)]) == pytest.approx(1.0)


# ---------------------------------------------------------------------- evaluation: eval mode, no augmentation, fp32


def test_evaluation_is_eval_mode_without_augmentation_on_a_batchnorm_model():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 1, 8, 8), dtype=torch.uint8, generator=g)
    data = DeviceData(images, torch.randint(0, 10, (48,), generator=g), torch.arange(48), "data")
    engine = Engine("cpu", (0.5,), (0.25,), Augment(crop_pad=2, flip=True))
    model = build_model("small_cnn", 1, 10, 8, seed=0)
    engine.train_supervised(model, data, TrainRecipe(epochs=2, batch_size=16, lr=0.05), seed=0)  # running statistics != batch ones
    model.train()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    probs, correct = engine.true_label_outputs(model, data, batch_size=16)
    assert model.training  # restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())  # no statistics moved
    probe = copy.deepcopy(model).eval()
    with torch.no_grad():
        expected = torch.softmax(probe(engine.to_input(images, None, augment=False)), 1)
    assert torch.allclose(probs, expected[torch.arange(48), data.labels], atol=1e-6)
    assert torch.equal(correct, expected.argmax(1) == data.labels)


def test_evaluation_is_float32_even_where_training_uses_bf16_autocast():
    g = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=g)
    data = DeviceData(images, torch.randint(0, 10, (64,), generator=g), torch.arange(64), "data")
    model = build_model("small_cnn", 1, 10, 8, seed=0).eval()
    fp32 = Engine("cpu", (0.5,), (0.25,), Augment(0, False), amp=False)
    bf16 = Engine("cpu", (0.5,), (0.25,), Augment(0, False), amp=True)
    probs32, _ = fp32.true_label_outputs(model, data)
    probs_amp, _ = bf16.true_label_outputs(model, data)
    assert torch.equal(probs32, probs_amp)
    with torch.no_grad(), bf16.autocast():
        autocast_logits = model(bf16.to_input(images, None, augment=False))
    assert autocast_logits.dtype == torch.bfloat16  # what evaluation would have used before


def test_autocast_entered_inside_full_precision_is_a_no_op():
    """Evaluation code may share helpers with training (the ssl loss, an encoder's forward) that
    enter `engine.autocast()` themselves: inside `full_precision()` they compute in float32."""
    bf16 = Engine("cpu", (0.5,), (0.25,), Augment(0, False), amp=True)
    a, b = torch.randn(4, 4), torch.randn(4, 4)
    with bf16.autocast():
        assert (a @ b).dtype == torch.bfloat16
    with bf16.full_precision():
        with bf16.autocast():
            assert (a @ b).dtype == torch.float32
        with bf16.full_precision(), bf16.autocast():  # nested: still float32 ...
            assert (a @ b).dtype == torch.float32
        with bf16.autocast():  # ... and after the inner block closes
            assert (a @ b).dtype == torch.float32
    with bf16.autocast():  # restored once the block is left
        assert (a @ b).dtype == torch.bfloat16


# ---------------------------------------------------------------------- MIA: a function of the model, not of rounding


def test_mia_is_the_same_for_outputs_computed_at_other_batch_sizes_or_rounded_differently(tiny_cell):
    """The issue's measurement: float rounding of the confidences (1e-7) moved MIA-efficacy at
    sklearn's default tolerance; at the pinned tolerance every variant gives one number."""
    cell = tiny_cell("Original", "random50")
    engine, model, sets = cell.engine, cell.model, cell.sets

    def confidences(batch_size):
        return [engine.true_label_outputs(model, d, batch_size)[0].numpy().astype(np.float64)
                for d in (sets.retain, sets.test, sets.forget)]

    (retain, test, forget), (retain_1, test_1, forget_1) = confidences(1024), confidences(1)
    assert np.abs(retain - retain_1).max() < 1e-5  # the same outputs up to rounding
    reference = mia_efficacy(retain[: len(test)], test, forget)
    assert mia_efficacy(retain_1[: len(test)], test_1, forget_1) == reference
    rng = np.random.default_rng(0)
    for _ in range(6):
        jitter = [a + rng.uniform(-1e-7, 1e-7, a.shape) for a in (retain[: len(test)], test, forget)]
        assert mia_efficacy(*jitter) == reference


# ---------------------------------------------------------------------- FLOPs against recorded counts


@pytest.mark.parametrize("method,params", [("FT", {"epochs": 1}), ("CU", {"max_passes": 1}), ("GP", {"epochs": 1})])
def test_recorded_pflops_follow_from_recorded_counts(tiny_spec, method, params):
    record = run_cell(tiny_spec(method, "random10", params=params))
    cost, samples = record["cost"], record["cost"]["samples"]
    f = forward_macs(build_model("small_cnn", 1, 10, 8, seed=0), 1, 8)  # independent of the record
    assert cost["forward_macs_per_sample"] == pytest.approx(f)
    second = cost_model("small_cnn", 1, 10, 8).second_order_per_sample
    expected = (2 * f * samples["forward"] + 4 * f * samples["backward"] + second * samples["second_order"]
                + 2 * f * samples["evaluation"]) / 1e15
    assert cost["pflops"] == pytest.approx(expected, rel=1e-12)
    assert cost["evaluation_pflops"] == pytest.approx(2 * f * samples["evaluation"] / 1e15, rel=1e-12)
    n = record["split"]
    if method == "FT":
        assert samples == {"forward": n["n_retain"], "backward": n["n_retain"], "second_order": 0, "evaluation": 0}
    if method == "CU":  # one pass: the stop rule evaluated D_f and D_t once, counted apart
        n_test = 360
        assert samples["evaluation"] == n["n_forget"] + n_test
        assert record["method_info"]["passes"] == 1
    if method == "GP":
        assert samples == {"forward": n["n_forget"], "backward": 2 * n["n_forget"], "second_order": n["n_forget"],
                           "evaluation": 0}
    assert record["evaluation"]["precision"] == "fp32" and record["evaluation"]["mia_svc"]["tol"] == 1e-6


# ---------------------------------------------------------------------- the code fingerprint


def test_a_record_made_by_other_code_is_not_reused(tiny_spec, tmp_path, monkeypatch):
    import bench.cell as cell_module
    import bench.environment as env

    spec = tiny_spec("Original", "random10")
    store = RecordStore(tmp_path)
    store.write(run_cell(spec))
    assert store.is_done(spec)
    real = env.code_fingerprint

    def edited(method, task):
        fingerprint, files = real(method, task)
        return fingerprint[::-1], files

    monkeypatch.setattr(cell_module, "code_fingerprint", edited)
    assert not store.is_done(spec)


def test_the_fingerprint_covers_the_methods_modules_and_the_harness_and_follows_their_content(monkeypatch):
    from pathlib import Path

    import bench.environment as env

    env.code_fingerprint.cache_clear()
    cu_hash, cu_files = env.code_fingerprint("CU", "classify")
    assert {"methods/cu.py", "methods/_contrastive.py", "bench/engine.py", "bench/metrics.py", "bench/flops.py",
            "bench/cell.py"} <= set(cu_files)
    salun_files = env.code_fingerprint("SalUn", "classify")[1]
    assert {"baselines/salun.py", "baselines/rl.py", "baselines/_common.py"} <= set(salun_files)
    assert "methods/cu.py" not in salun_files and "bench/reports/tables.py" not in cu_files
    read = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: read(p) + (b"# edited" if p.name == "_contrastive.py" else b""))
    env.code_fingerprint.cache_clear()
    try:
        assert env.code_fingerprint("CU", "classify")[0] != cu_hash
        assert env.code_fingerprint("FT", "classify")[1] == env.code_fingerprint("FT", "classify")[1]
    finally:
        monkeypatch.undo()
        env.code_fingerprint.cache_clear()
    assert env.code_fingerprint("CU", "classify")[0] == cu_hash


# ---------------------------------------------------------------------- presets


def test_presets_run_their_base_procedure_with_their_own_defaults():
    hcu, scaled = METHODS.get("HCU"), METHODS.get("HCU-scaled")
    assert scaled.cls is hcu.cls and scaled.preset_of == "HCU" and scaled.smoke == hcu.smoke
    assert scaled.params().hyperbolic_embedding == "scaled" and hcu.params().hyperbolic_embedding == "normalized"
    assert scaled.params({"radius": 2.0}).radius == 2.0  # still overridable
    ref = METHODS.get("CU-euclid-ref").params()
    assert (ref.temperature, ref.omega, ref.lambda_ce, ref.lambda_ul) == (0.3, 4, 0.3, 0.7)
    same = METHODS.get("CU-hcu-weights").params()
    h = hcu.params()
    assert (same.temperature, same.lambda_ce, same.lambda_ul) == (h.temperature, h.lambda_ce, h.lambda_ul)
    assert {s.name: s.default for s in METHODS.get("CU-euclid-ref").param_specs()}["lambda_ul"] == 0.7
    names = list(METHODS)
    assert names.index("CU-euclid-ref") > names.index("CU") and names.index("HCU-scaled") > names.index("HCU")


def test_profiles_run_the_presets():
    from bench import profiles
    from bench.grid import plan
    from bench.method import resolve_methods

    for name in ("quick", "cifar10"):
        profile = profiles.load(name)
        cells, _ = plan(profile, resolve_methods(list(profile.methods) if profile.methods else None),
                        data_root=".", cache_dir=".")
        planned = {c.method for c in cells}
        assert {"HCU-scaled", "CU-euclid-ref", "CU-hcu-weights", "HCU", "CU"} <= planned, name
    quick = profiles.load("quick")
    cells, _ = plan(quick, resolve_methods(["HCU-scaled"]), data_root=".", cache_dir=".")
    spec = next(c for c in cells if c.method == "HCU-scaled")
    assert spec.params["hyperbolic_embedding"] == "scaled" and spec.params["max_passes"] == 6  # smoke schedule


# ---------------------------------------------------------------------- what defines a method


def _kl_to_teacher_on_forget(cell) -> float:
    ctx = cell.ctx
    x = cell.engine.to_input(ctx.forget.images, None, augment=False)
    student = copy.deepcopy(cell.model).eval()
    with torch.no_grad():
        t, s = ctx.original(x), student(x)
    return F.kl_div(F.log_softmax(s, 1), F.log_softmax(t, 1), reduction="batchmean", log_target=True).item()


def test_scrub_max_steps_raise_the_kl_to_the_teacher_on_the_forget_set(tiny_cell):
    kl = {}
    for msteps in (0, 2):
        cell = tiny_cell("SCRUB", "random10", params={"epochs": 2, "msteps": msteps, "lr": 0.05, "forget_batch_size": 16})
        cell.params.run(cell.ctx)
        kl[msteps] = _kl_to_teacher_on_forget(cell)
    assert kl[2] > 2 * kl[0] and kl[2] > 0.05


def _forget_accuracy(cell) -> float:
    return cell.engine.accuracy(cell.model, cell.ctx.forget)


@pytest.mark.parametrize("method", ["RL", "SalUn"])
def test_rl_and_salun_lower_forget_accuracy_in_a_classwise_cell(tiny_cell, method):
    cell = tiny_cell(method, "class3", params={"epochs": 3, "batch_size": 32})
    before = _forget_accuracy(cell)
    cell.params.run(cell.ctx)
    after = _forget_accuracy(cell)
    assert before > 80.0 and after < before - 40.0, (before, after)


