"""Metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.data.catalog import Augment
from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.metrics import EvalSets, avg_gap, evaluate, mia_efficacy


def test_avg_gap_is_the_mean_absolute_difference_over_four_metrics():
    ours = {"RA": 99.0, "UA": 6.0, "TA": 93.0, "MIA": 10.0}
    retrain = {"RA": 100.0, "UA": 4.0, "TA": 94.0, "MIA": 14.0}
    assert avg_gap(ours, retrain) == pytest.approx((1 + 2 + 1 + 4) / 4)
    assert avg_gap(retrain, retrain) == 0.0


def test_mia_on_separable_confidences_has_a_known_answer():
    rng = np.random.default_rng(0)
    members = rng.uniform(0.97, 1.0, 400)  # trained: confident
    nonmembers = rng.uniform(0.2, 0.6, 400)  # unseen: unsure
    looks_unseen = rng.uniform(0.25, 0.55, 50)
    looks_trained = rng.uniform(0.975, 0.995, 50)
    assert mia_efficacy(members, nonmembers, looks_unseen) == 100.0
    assert mia_efficacy(members, nonmembers, looks_trained) == 0.0
    assert mia_efficacy(members, nonmembers, np.concatenate([looks_unseen, looks_trained])) == 50.0


def test_mia_uses_the_specified_svc(monkeypatch):
    import sklearn.svm

    seen = {}

    class Spy(sklearn.svm.SVC):
        def __init__(self, **kwargs):
            seen.update(kwargs)
            super().__init__(**kwargs)

    monkeypatch.setattr(sklearn.svm, "SVC", Spy)
    mia_efficacy(np.array([0.9, 0.95, 0.99]), np.array([0.1, 0.2, 0.3]), np.array([0.5]))
    assert seen == {"C": 3, "gamma": "auto", "kernel": "rbf", "tol": 1e-6}


class ConstantLogits(torch.nn.Module):
    """Predicts class `image[0,0,0] % 10` with confidence set by the pixel value (a known model)."""

    def forward(self, x):
        n = x.shape[0]
        logits = torch.zeros(n, 10)
        raw = torch.round(x[:, 0, 0, 0] * 255).long()  # identity normaliser below
        logits[torch.arange(n), raw % 10] = 5.0
        return logits


def _engine():
    return Engine("cpu", mean=(0.0,), std=(1.0,), augment=Augment(0, False))


def _data(pixels, labels, name):
    images = torch.tensor(pixels, dtype=torch.uint8).view(-1, 1, 1, 1)
    return DeviceData(images, torch.tensor(labels), torch.arange(len(labels)), name)


def test_evaluate_accuracies_by_hand():
    # model predicts pixel % 10; labels chosen so that retain 3/4, forget 1/2, test 2/4 are right
    retain = _data([1, 2, 3, 4], [1, 2, 3, 0], "retain")
    forget = _data([5, 6], [5, 0], "forget")
    test = _data([7, 8, 9, 10], [7, 8, 0, 1], "test")
    metrics = evaluate(_engine(), ConstantLogits(), EvalSets.build(retain, forget, test, None))
    assert metrics["RA"] == pytest.approx(75.0)
    assert metrics["UA"] == pytest.approx(50.0)
    assert metrics["TA"] == pytest.approx(50.0)
    assert 0.0 <= metrics["MIA"] <= 100.0
    assert "forget_class_TA" not in metrics


def test_classwise_test_set_excludes_the_forgotten_class_and_reports_it_apart():
    retain = _data([1, 2], [1, 2], "retain")
    forget = _data([3, 13], [3, 3], "forget")
    test = _data([1, 2, 3, 4, 14], [1, 2, 3, 3, 4], "test")  # class 3: one right (3), one wrong (4)
    sets = EvalSets.build(retain, forget, test, forget_class=3)
    assert sorted(sets.test.labels.tolist()) == [1, 2, 4]
    metrics = evaluate(_engine(), ConstantLogits(), sets)
    assert metrics["TA"] == pytest.approx(100.0)
    assert metrics["forget_class_TA"] == pytest.approx(50.0)
    assert metrics["UA"] == pytest.approx(0.0)
    whole = EvalSets.build(retain, forget, test, forget_class=3, classwise_test="all")
    assert len(whole.test) == 5
