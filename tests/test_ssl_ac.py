"""AC-SSL (baselines/ssl_ac.py): each term against a hand computation, the assembled loss on a
constructed batch, and the data it trains on (D_r u D_f, never D_t nor the non-member pool).
Its cell runs end to end with the other ssl methods in tests/test_ssl.py."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from baselines.ssl_ac import AlignmentCalibrationSSL, calibrated_mean, partner_positions, positive_alignment
from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.flops import SampleCounter
from bench.method import METHODS
from bench.splits import Scenario
from bench.tasks.ssl.context import SSLContext
from bench.tasks.ssl.models import build_ssl_model
from bench.tasks.ssl.objective import Objective
from bench.views import ViewSpec


def _ce(logits: list[float], target: int) -> float:
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def _cos(a, b) -> float:
    return sum(x * y for x, y in zip(a, b)) / math.sqrt(sum(x * x for x in a) * sum(y * y for y in b))


def test_calibrated_mean_weights_the_forget_rows_by_alpha():
    forget_rows = torch.tensor([False, True, False])
    # SimCLR: two rows per image (view 1's three, then view 2's); image 1 is a forget image
    simclr = torch.tensor([1.0, 2.0, 3.0, 4.0, 8.0, 6.0])
    assert calibrated_mean(simclr, forget_rows, 3.0).item() == pytest.approx((1 + 3 * 2 + 3 + 4 + 3 * 8 + 6) / 10)
    assert calibrated_mean(simclr, forget_rows, 1.0).item() == pytest.approx(24 / 6)  # alpha 1: the plain mean
    # MoCo / BYOL: one row per image; alpha 0 drops the forget rows
    assert calibrated_mean(torch.tensor([1.0, 5.0, 3.0]), forget_rows, 3.0).item() == pytest.approx((1 + 15 + 3) / 5)
    assert calibrated_mean(torch.tensor([1.0, 5.0, 3.0]), forget_rows, 0.0).item() == pytest.approx(2.0)


def test_positive_alignment_is_the_mean_cosine_over_the_forget_rows():
    anchor = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 3.0, 4.0]])
    positive = torch.tensor([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 4.0, 3.0]])
    # cosines 0, 1/sqrt(2), 24/25
    got = positive_alignment(anchor, positive, torch.tensor([True, True, False]))
    assert got.item() == pytest.approx((0 + 1 / math.sqrt(2)) / 2, abs=1e-6)
    got = positive_alignment(anchor, positive, torch.tensor([False, True, True]))
    assert got.item() == pytest.approx((1 / math.sqrt(2) + 24 / 25) / 2, abs=1e-6)
    assert positive_alignment(anchor, positive, torch.zeros(3, dtype=torch.bool)).item() == 0.0


def test_partners_are_other_forget_images():
    pos = torch.tensor([0, 3, 4])
    assert partner_positions(pos, 5, 2, torch.Generator()).tolist() == [2, 0, 1]  # shifted, wrapping
    drawn = partner_positions(torch.zeros(2000, dtype=torch.int64), 5, 0, torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == {0, 1, 2, 3, 4}  # uniform over D_f, whatever the anchor


def _image(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8).reshape(1, 2, 2)


def test_the_loss_on_a_constructed_simclr_batch_matches_a_hand_computation():
    """Three images, the middle one a forget image (D_f = [it, f1]); identity encoder, views
    without augmentation except a known offset on the third view. With index_shift 1 its partner is
    f1: NT-Xent on (x0, x0), (x1, f1), (x2, x2), forget rows weighted by alpha, plus
    beta_eff * cos(x1, x1 + d)."""
    x0, x1, x2, f1 = [1, 2, 0, 1], [0, 1, 3, 0], [2, 0, 1, 1], [1, 1, 1, 0]
    d = [1.0, 0.0, 0.0, 0.0]
    raw = torch.stack([_image(x0), _image(x1), _image(x2)])
    forget = DeviceData(torch.stack([_image(x1), _image(f1)]), torch.zeros(2, dtype=torch.int64), torch.arange(2))
    calls = []

    def view(r: torch.Tensor, augment: bool = True) -> torch.Tensor:
        calls.append(r)
        offset = torch.tensor(d).reshape(1, 1, 2, 2) if len(calls) == 3 else 0.0
        return r.float() + offset

    t, alpha, beta_eff = 0.5, 3.0, 0.7
    engine = Engine("cpu", (0.0,), (1.0,), None)
    ctx = SimpleNamespace(objective=Objective("simclr", engine, ViewSpec(size=2), simclr_temperature=t),
                          model=SimpleNamespace(online=torch.nn.Flatten()), view=view, generator=torch.Generator())
    ac = AlignmentCalibrationSSL(alpha=alpha, index_shift=1)
    got = ac.loss(ctx, raw, torch.tensor([False, True, False]), torch.tensor([-1, 0, -2]), forget, beta_eff)

    z = [x0, x1, x2, x0, f1, x2]  # view 1's rows, then view 2's
    rows = []
    for i in range(6):
        others = [j for j in range(6) if j != i]
        rows.append(_ce([_cos(z[i], z[j]) / t for j in others], others.index((i + 3) % 6)))
    w = [1, alpha, 1, 1, alpha, 1]
    expected = sum(wi * r for wi, r in zip(w, rows)) / sum(w)
    expected += beta_eff * _cos(x1, [a + b for a, b in zip(x1, d)])
    assert got.item() == pytest.approx(expected, abs=1e-5)
    assert torch.equal(calls[1][1], _image(f1)) and torch.equal(calls[1][0], raw[0])  # the forget row's partner
    # beta 0: no third view, only the calibrated NT-Xent
    calls.clear()
    got0 = ac.loss(ctx, raw, torch.tensor([False, True, False]), torch.tensor([-1, 0, -2]), forget, 0.0)
    assert len(calls) == 2 and got0.item() == pytest.approx(sum(wi * r for wi, r in zip(w, rows)) / sum(w), abs=1e-5)


class _Poisoned:
    def __getattr__(self, name):
        raise AssertionError(f"AC-SSL touched a held-out set ({name})")

    def __len__(self):
        raise AssertionError("AC-SSL touched a held-out set (len)")


def _sets() -> dict[str, DeviceData]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.arange(40) % 10
    index = torch.arange(40)
    cut = {"retain": (0, 16), "forget": (16, 24), "test": (24, 32), "pool": (32, 40)}
    return {k: DeviceData(images[a:b], labels[a:b], index[a:b], k) for k, (a, b) in cut.items()}


@pytest.mark.parametrize("framework", ["simclr", "moco", "byol"])
def test_ac_trains_on_retain_and_forget_only_never_on_d_t(framework, monkeypatch):
    torch.manual_seed(0)
    model = build_ssl_model(f"{framework}-small_cnn", 3, 10, 8, seed=0, hidden=8, dim=4, queue=16)
    model.train()
    engine = Engine("cpu", (0.5,) * 3, (0.25,) * 3, None)
    s = _sets()
    counter = SampleCounter()
    counter.attach(model.online)
    ctx = SSLContext(objective=Objective(framework, engine, ViewSpec(size=8)), nonmember_pool=s["pool"],
                     engine=engine, model=model, retain=s["retain"], forget=s["forget"], test=s["test"],
                     scenario=Scenario("random20", "random", 0.2), num_classes=10, seed=0, counter=counter,
                     make_original=lambda: model)
    read: list[int] = []
    batch_at = engine.batch_at

    def record(data, pos, generator, augment):
        read.extend(data.index[pos].tolist())
        return batch_at(data, pos, generator, augment)

    monkeypatch.setattr(engine, "batch_at", record)
    monkeypatch.setattr(ctx, "test", _Poisoned())
    monkeypatch.setattr(ctx, "nonmember_pool", _Poisoned())
    before = [p.detach().clone() for p in model.trainable()]
    METHODS.get("AC-SSL").params({"epochs": 1, "batch_size": 8}).run(ctx)
    assert sorted(read) == list(range(24))  # one pass over D_r u D_f (indices 0..23), nothing else
    assert any(not torch.equal(a, b.detach()) for a, b in zip(before, model.trainable()))
    assert not ctx.saw_nonfinite()
    # 3 batches of 8: two views (MoCo: the query only; the key goes through the uncounted target)
    # plus SimCLR's third view through the online network
    views = {"simclr": 3, "moco": 1, "byol": 2}[framework]
    assert (counter.counts.forward, counter.counts.backward) == (24 * views, 24 * views)
    assert ctx.info["beta_effective"] == pytest.approx(1.0 * 8 / 24)
