"""The ssl task: losses against hand computations, MoCo's queue and momentum, batched views,
EncoderMI's score and threshold, GP's per-sample penalty on an encoder, Retrain's data, and
every ssl method's cell end to end on the CPU (scikit-learn digits, tiny encoders)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from bench import profiles
from bench.cell import execute_cell
from bench.engine import Engine
from bench.errors import ConfigError
from bench.grid import plan
from bench.method import METHODS, resolve_methods
from bench.tasks import TASKS
from bench.tasks.ssl import SSL
from bench.tasks.ssl import reference as ssl_reference
from bench.tasks.ssl.audit import fit_threshold, knn_accuracy, mean_pairwise_cosine, membership_metrics
from bench.tasks.ssl.losses import byol_regression, moco_infonce, nt_xent
from bench.tasks.ssl.models import build_ssl_model
from bench.views import ViewSpec, adjust_hue, colour_jitter, crop_boxes, hsv_to_rgb, resized_crop, rgb_to_hsv, views

TINY_TASK = {"members": 160, "nonmembers": 64, "nonmember_pool": 40, "epochs": 1, "batch_size": 64,
             "proj_hidden": 16, "proj_dim": 8, "moco_queue": 32, "mia_views": 3, "mia_grid": 101,
             "probe_epochs": 2, "knn_k": 10}


# ---------------------------------------------------------------------------- losses


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_nt_xent_matches_a_hand_computation():
    z1 = [[1.0, 0.0], [1.0, 1.0]]
    z2 = [[2.0, 1.0], [0.0, 1.0]]
    t = 0.5
    z = z1 + z2
    expected = 0.0
    for i in range(4):
        positive = (i + 2) % 4
        others = [j for j in range(4) if j != i]
        logits = [_cos(z[i], z[j]) / t for j in others]
        expected += _ce(logits, others.index(positive))
    expected /= 4
    got = nt_xent(torch.tensor(z1), torch.tensor(z2), t)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_moco_infonce_matches_a_hand_computation():
    q = [[3.0, 4.0]]
    k = [[1.0, 0.0]]
    queue = [[0.0, 1.0], [-1.0, 0.0], [0.6, 0.8]]
    t = 0.2
    logits = [_cos(q[0], k[0]) / t] + [_cos(q[0], n) / t for n in queue]
    got = moco_infonce(torch.tensor(q), torch.tensor(k), torch.tensor(queue), t)
    assert got.item() == pytest.approx(_ce(logits, 0), abs=1e-5)


def test_byol_regression_is_two_minus_twice_the_cosine():
    p = torch.tensor([[1.0, 0.0], [2.0, 0.0], [1.0, 1.0]])
    z = torch.tensor([[0.0, 3.0], [5.0, 0.0], [-1.0, -1.0]])
    assert byol_regression(p, z).tolist() == pytest.approx([2.0, 0.0, 4.0], abs=1e-6)


def test_moco_queue_wraps_and_the_momentum_update_is_an_ema():
    model = build_ssl_model("moco-small_cnn", 1, 10, 8, seed=0, hidden=4, dim=2, queue=5)
    model.enqueue(torch.tensor([[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]))
    assert model.queue_ptr.item() == 3 and model.queue[:3, 0].tolist() == [1.0, 2.0, 3.0]
    model.enqueue(torch.tensor([[4.0, 0.0], [5.0, 0.0], [6.0, 0.0]]))  # wraps: 4, 5 at the end, 6 at the front
    assert model.queue_ptr.item() == 1 and model.queue[:, 0].tolist() == [6.0, 2.0, 3.0, 4.0, 5.0]

    online = [p.detach().clone() for p in model.online.parameters()]
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(1.0)
    before = [p.detach().clone() for p in model.target.parameters()]
    model.momentum_update(0.9)
    for t0, o, t1 in zip(before, online, model.target.parameters()):
        assert torch.allclose(t1, 0.9 * t0 + 0.1 * (o + 1.0), atol=1e-6)
    assert all(not p.requires_grad for p in model.target.parameters())
    assert {id(p) for p in model.trainable()}.isdisjoint({id(p) for p in model.target.parameters()})


# ---------------------------------------------------------------------------- views


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_full_image_box_is_the_identity_and_flip_mirrors():
    images = torch.rand(2, 3, 6, 6)
    boxes = torch.tensor([[0.0, 0.0, 6.0, 6.0]] * 2)
    assert torch.allclose(resized_crop(images, boxes, 6, None), images, atol=1e-6)
    flipped = resized_crop(images, boxes, 6, torch.tensor([True, False]))
    assert torch.allclose(flipped[0], images[0].flip(-1), atol=1e-6) and torch.allclose(flipped[1], images[1], atol=1e-6)
    # a 2x2 box at (top 1, left 3) resized back to 2x2 is exactly those pixels
    part = resized_crop(images, torch.tensor([[1.0, 3.0, 2.0, 2.0]] * 2), 2, None)
    assert torch.allclose(part, images[:, :, 1:3, 3:5], atol=1e-6)


def test_resized_crop_equals_torchvisions_crop_then_resize_edges_included():
    """Cropping first and resizing second never reads a pixel outside the box; ours, one
    grid_sample on the whole image, must not either (its edge rows did before the clamp)."""
    import torchvision.transforms.functional as TF

    images = torch.rand(1, 3, 32, 32, generator=_gen(0))
    g = _gen(1)
    for _ in range(100):
        h, w = (int(torch.randint(4, 33, (1,), generator=g)) for _ in range(2))
        top, left = int(torch.randint(0, 33 - h, (1,), generator=g)), int(torch.randint(0, 33 - w, (1,), generator=g))
        expected = TF.resized_crop(images, top, left, h, w, [32, 32], antialias=True)
        box = torch.tensor([[top, left, h, w]], dtype=torch.float32)
        torch.testing.assert_close(resized_crop(images, box, 32, None), expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(resized_crop(images, box, 32, torch.tensor([True])), expected.flip(-1), rtol=0, atol=1e-6)


def test_crop_boxes_stay_inside_and_cover_the_scale_range():
    boxes = crop_boxes(4000, 32, 32, (0.2, 1.0), (3 / 4, 4 / 3), _gen(), "cpu")
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= 32).all() and (left + w <= 32).all()
    area = (h * w / 1024)
    assert area.min() >= 0.18 and area.max() <= 1.0 and area.mean() == pytest.approx(0.6, abs=0.05)


def test_hsv_round_trip_and_colour_jitter_of_zero_strength_is_the_identity():
    x = torch.rand(5, 3, 4, 4)
    assert torch.allclose(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-5)
    assert torch.allclose(adjust_hue(x, torch.zeros(5)), x, atol=1e-5)
    red = torch.zeros(1, 3, 1, 1)
    red[0, 0] = 1.0  # hue 0 shifted by 1/3 is green
    assert adjust_hue(red, torch.tensor([1 / 3])).flatten().tolist() == pytest.approx([0.0, 1.0, 0.0], abs=1e-5)
    assert torch.allclose(colour_jitter(x, (0.0, 0.0, 0.0, 0.0), torch.ones(5, dtype=torch.bool), _gen()), x, atol=1e-5)


def test_views_are_in_range_and_greyscale_with_p_one_has_equal_channels():
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    out = views(images, ViewSpec(grey_p=1.0), _gen())
    assert out.shape == (6, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
    assert torch.equal(views(images, ViewSpec(), _gen(3)), views(images, ViewSpec(), _gen(3)))  # seeded


# ---------------------------------------------------------------------------- audits


def test_mean_pairwise_cosine_on_a_constructed_case():
    same = torch.tensor([[[1.0, 0.0], [2.0, 0.0], [3.0, 0.0]]])
    spread = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]])  # cosines 0, 1/sqrt2, 1/sqrt2
    got = mean_pairwise_cosine(torch.cat([same, spread]))
    assert got.tolist() == pytest.approx([1.0, (2 / math.sqrt(2)) / 3], abs=1e-6)


def test_threshold_maximises_balanced_accuracy_and_the_metrics_are_exact():
    members, nonmembers = np.array([0.9, 0.45]), np.array([0.55, 0.5, 0.35, 0.2, 0.1, 0.05])
    # t in (0.35, 0.45]: TPR 1, TNR 4/6 (balanced 0.833); t in (0.55, 0.9]: TPR 1/2, TNR 1 (0.75).
    # Plain accuracy would choose the second (7/8 against 6/8): the fit is balanced, at grid point 0.4
    assert fit_threshold(members, nonmembers, 11) == pytest.approx(0.4)
    m = membership_metrics(0.4, members, nonmembers)
    assert m["encodermi_acc"] == pytest.approx(75.0)
    assert m["encodermi_precision"] == pytest.approx(50.0) and m["encodermi_recall"] == pytest.approx(100.0)
    assert m["encodermi_auc"] == pytest.approx(100 * 10 / 12)


def test_weighted_knn_votes_by_similarity():
    bank = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1])
    query = torch.tensor([[1.0, 0.05], [0.1, 1.0]])
    assert knn_accuracy(bank, labels, query, torch.tensor([0, 1]), 2, k=2, temperature=0.1) == 100.0
    # k = 3: the query near class 1 still wins, exp(1/0.1) outweighs the two far class-0 votes
    assert knn_accuracy(bank, labels, query, torch.tensor([0, 1]), 2, k=3, temperature=0.1) == 100.0


def test_the_audit_is_float32_even_where_training_uses_bf16_autocast():
    """Every ssl metric (EncoderMI's cosines, kNN, the probe, LOSS and COSSIM, which go through the
    training loss's own autocast) is the same number from an engine that trains in bf16."""
    from bench.data.device_data import DeviceData
    from bench.tasks.ssl.audit import AuditConfig, AuditSets, audit
    from bench.tasks.ssl.objective import Objective

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels, index = torch.arange(48) % 10, torch.arange(48)
    retain, forget, non = (DeviceData(images[a:b], labels[a:b], index[a:b], name)
                           for a, b, name in ((0, 24, "retain"), (24, 32, "forget"), (32, 48, "nonmembers")))
    sets = AuditSets(retain, forget, non, torch.arange(8))
    cfg = AuditConfig(num_classes=10, image_size=8, batch_size=16, seed=3, mia_views=3, mia_crop_scale=0.1,
                      mia_grid=101, knn_k=5, knn_temperature=0.1, probe_epochs=2, probe_lr=0.1, probe_batch_size=8)
    model = build_ssl_model("simclr-small_cnn", 3, 10, 8, seed=0, hidden=8, dim=4, queue=16)
    results = []
    for amp in (False, True):
        engine = Engine("cpu", (0.5,) * 3, (0.25,) * 3, None, amp=amp)
        results.append(audit(engine, model, Objective("simclr", engine, ViewSpec(size=8)), sets, cfg))
    fp32, bf16 = results
    assert fp32.keys() == bf16.keys()
    assert all(fp32[k] == bf16[k] or (math.isnan(fp32[k]) and math.isnan(bf16[k])) for k in fp32), \
        {k: (fp32[k], bf16[k]) for k in fp32 if fp32[k] != bf16[k]}


# ---------------------------------------------------------------------------- GP on an encoder


def _ssl_context(framework: str = "simclr"):
    from bench.data.device_data import DeviceData
    from bench.flops import SampleCounter
    from bench.splits import Scenario
    from bench.tasks.ssl.context import SSLContext
    from bench.tasks.ssl.objective import Objective

    torch.manual_seed(0)
    model = build_ssl_model(f"{framework}-small_cnn", 3, 10, 8, seed=0, hidden=8, dim=4, queue=16)
    model.train()
    for _ in range(3):  # running statistics that differ from any one batch's
        model.features(torch.randn(16, 3, 8, 8) * 2 + 1)
    engine = Engine("cpu", (0.5,) * 3, (0.25,) * 3, None)
    data = DeviceData(torch.randint(0, 256, (12, 3, 8, 8), dtype=torch.uint8), torch.arange(12) % 10, torch.arange(12))
    counter = SampleCounter()
    counter.attach(model.online)
    return SSLContext(objective=Objective(framework, engine, ViewSpec(size=8)), nonmember_pool=data, engine=engine,
                      model=model, retain=data, forget=data, test=data, scenario=Scenario("random20", "random", 0.2),
                      num_classes=10, seed=0, counter=counter, make_original=lambda: model), counter


def test_gp_penalty_on_an_encoder_is_per_sample_with_frozen_batchnorm():
    from methods.gp import encoder_output_penalty

    ctx, counter = _ssl_context()
    x = torch.randn(6, 3, 8, 8)
    together = encoder_output_penalty(ctx, x, 1.0, "frozen")
    alone = torch.stack([encoder_output_penalty(ctx, x[i:i + 1], 1.0, "frozen") for i in range(6)])
    assert together.item() == pytest.approx(alone.mean().item(), rel=1e-5)
    # with the batch's statistics the samples are coupled, and the value is not the per-sample one
    coupled = encoder_output_penalty(ctx, x, 1.0, "batch")
    assert abs(coupled.item() - together.item()) > 1e-3
    assert ctx.model.training  # restored after the frozen pass
    # each penalty sample is a forward, two backward passes (the input gradient, seen by the hook;
    # the loss's pass back through it, counted by ctx.input_gradient) and the double backward's extra
    assert (counter.counts.forward, counter.counts.backward, counter.counts.second_order) == (18, 36, 18)


def test_gp_encoder_ablation_with_every_weight_zero_is_refused():
    ctx, _ = _ssl_context()
    gp = METHODS.get("GP").params({"alpha": 0.0, "beta": 0.0, "epochs": 1})
    with pytest.raises(ValueError, match="every term has weight 0"):
        gp.run(ctx)


# ---------------------------------------------------------------------------- the task in the harness


def _profile(**task_params):
    raw = {"task": "ssl", "dataset": "digits", "model": "simclr-small_cnn", "device": "cpu", "scenarios": ["random20"],
           "smoke": True, "threads": 2, "task_params": {**TINY_TASK, **task_params}}
    return profiles.parse(raw, name="ssl-test")


def test_profiles_validate_the_ssl_task():
    assert profiles.load("ssl-quick").task == SSL and profiles.load("ssl-cifar10").model == "moco-resnet18"
    with pytest.raises(ConfigError, match="task ssl has no model 'resnet18'"):
        plan(profiles.parse({"task": "ssl", "dataset": "cifar10", "model": "resnet18"}, name="x"),
             resolve_methods(["Original"]), data_root=".", cache_dir=".")
    with pytest.raises(ConfigError, match="has no hyperparameter 'member'"):
        profiles.parse({"task": "ssl", "dataset": "digits", "task_params": {"member": 3}}, name="x")


@pytest.fixture
def ssl_cells(cache_dir):
    def make(methods, **task_params):
        cells, notes = plan(_profile(**task_params), resolve_methods(methods), data_root=cache_dir / "data",
                            cache_dir=cache_dir, download=False)
        return cells, notes

    return make


def test_retrain_trains_on_the_retain_members_only(ssl_cells, monkeypatch):
    from bench.tasks.ssl.setting import draw_setting
    from bench.data.catalog import load_dataset

    seen: dict[str, torch.Tensor] = {}
    real_train = ssl_reference.EncoderReferences.train

    def spy(self, kind, seed, train_indices, desc):
        seen[kind] = train_indices.clone()
        return real_train(self, kind, seed, train_indices, desc)

    monkeypatch.setattr(ssl_reference.EncoderReferences, "train", spy)
    monkeypatch.setattr(ssl_reference, "_memory", type(ssl_reference._memory)())
    cells, _ = ssl_cells(["Retrain"], epochs=1, lr=0.02)  # a recipe no other test caches
    record = execute_cell(cells[0])
    assert record["status"] == "ok", record.get("traceback")
    spec = cells[0]
    data = load_dataset("digits", spec.data_root, cache=None, download=False)
    from bench.splits import parse_scenario

    setting = draw_setting(data.train_y, len(data.test_y), parse_scenario("random20", 10), 0, spec.task_params)
    assert set(seen) == {"retrain", "original"}
    assert torch.equal(seen["retrain"], setting.retain) and torch.equal(seen["original"], setting.members)
    assert not set(seen["retrain"].tolist()) & set(setting.forget.tolist())
    assert len(setting.forget) == 32 and len(setting.retain) == 128  # 20% of 160 members
    assert not set(setting.pool.tolist()) & set(setting.members.tolist())


@pytest.mark.parametrize("framework", ["simclr", "moco", "byol"])
def test_every_ssl_method_runs_end_to_end(ssl_cells, framework):
    cells, notes = ssl_cells(None)
    cells = [dataclasses.replace(c, model=f"{framework}-small_cnn",
                                 params={**c.params, **({"epochs": 1} if c.method == "GP" else {})}) for c in cells]
    names = [c.method for c in cells]  # references first; the rest in registry order
    assert names[:2] == ["Retrain", "Original"] and sorted(names[2:]) == ["AC-SSL", "FT-SSL", "GA-SSL", "GP"]
    assert any(n.startswith("not for the ssl task, skipped: ") and "FT" in n.split(": ")[1].split(", ") for n in notes)
    records = {c.method: execute_cell(c) for c in cells}
    for method, record in records.items():
        assert record["status"] == "ok", (method, record.get("traceback"))
        assert record["task"] == SSL and record["gap_metrics"] == list(TASKS.get(SSL).gap_metrics)
        assert all(math.isfinite(record["metrics"][k]) for k in record["gap_metrics"])
    gaps = [abs(records["Retrain"]["metrics"][k] - records["Retrain"]["retrain_reference"][k])
            for k in TASKS.get(SSL).gap_metrics]
    assert gaps == [0.0] * len(gaps)  # Retrain's cell is the reference
    assert records["Original"]["cost"]["samples"] == {"forward": 0, "backward": 0, "second_order": 0, "evaluation": 0}
    # FT-SSL (smoke: 2 epochs) over the 128 retain members in one batch: two views through the
    # online network (MoCo: the query view; the key view goes through the key encoder)
    online = 2 * 128 * 2 if framework != "moco" else 2 * 128
    target = {"simclr": 0, "moco": 2 * 128, "byol": 2 * 128 * 2}[framework]
    assert records["FT-SSL"]["cost"]["samples"] == {"forward": online + target, "backward": online, "second_order": 0, "evaluation": 0}
    # GP (1 epoch, one batch of the 32 forget members): the SSL loss's passes plus the penalty's
    gp = records["GP"]["cost"]["samples"]
    ssl_online = 32 * (1 if framework == "moco" else 2)
    ssl_target = {"simclr": 0, "moco": 32, "byol": 64}[framework]
    assert gp == {"forward": ssl_online + ssl_target + 32, "backward": ssl_online + 2 * 32, "second_order": 32, "evaluation": 0}
    # AC-SSL (smoke: 2 epochs) over D_r u D_f, the 160 members in one batch: the two views of the
    # framework's loss plus the third view of the positive calibration (SimCLR: online, with
    # gradient; MoCo and BYOL: through the key encoder / target)
    ac_online = 2 * 160 * {"simclr": 3, "moco": 1, "byol": 2}[framework]
    ac_target = 2 * 160 * {"simclr": 0, "moco": 2, "byol": 3}[framework]
    assert records["AC-SSL"]["cost"]["samples"] == {"forward": ac_online + ac_target, "backward": ac_online,
                                                    "second_order": 0, "evaluation": 0}
    assert records["AC-SSL"]["method_info"]["beta_effective"] == pytest.approx(32 / 160)
