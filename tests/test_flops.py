"""The FLOP convention and the engine's sample counting."""

from __future__ import annotations

import pytest
import torch

from bench.data.catalog import Augment
from bench.data.device_data import DeviceData
from bench.engine import Engine, TrainRecipe
from bench.flops import CostModel, SampleCounter, SampleCounts, cost_model, forward_macs
from bench.models import build_model


def test_resnet18_cifar_forward_is_0_5585e9_multiply_adds():
    model = build_model("resnet18", 3, 10, 32, seed=0)
    assert forward_macs(model, 3, 32) == pytest.approx(0.5585e9, rel=1e-4)


def test_retrain_cost_follows_the_6F_convention():
    f = 0.5585e9
    retrain = SampleCounts(forward=182 * 45_000, backward=182 * 45_000)
    assert CostModel(f, 0.0).pflops(retrain) == pytest.approx(182 * 45_000 * 6 * f / 1e15)
    assert CostModel(f, 0.0).pflops(retrain) == pytest.approx(27.44, abs=0.01)
    forward_only = SampleCounts(forward=10_000)
    assert CostModel(f, 0.0).flops(forward_only) == pytest.approx(2 * f * 10_000)


def _digits_like(n: int = 40) -> DeviceData:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 1, 8, 8), dtype=torch.uint8, generator=g)
    return DeviceData(images, torch.randint(0, 10, (n,), generator=g), torch.arange(n), "toy")


def test_engine_counts_every_trained_and_evaluated_sample():
    engine = Engine("cpu", (0.5,), (0.25,), Augment(1, False))
    data = _digits_like(40)
    model = build_model("small_cnn", 1, 10, 8, seed=0)
    counter = SampleCounter()
    counter.attach(model)
    recipe = TrainRecipe(epochs=3, batch_size=16, lr=0.01)
    engine.train_supervised(model, data, recipe, seed=0)
    assert counter.counts == SampleCounts(forward=3 * 40, backward=3 * 40)
    engine.accuracy(model, data)  # evaluation goes forward only
    assert counter.counts == SampleCounts(forward=4 * 40, backward=3 * 40)
    counter.detach()
    engine.accuracy(model, data)
    assert counter.counts.forward == 4 * 40  # detached: no longer counted


def test_double_backward_counts_two_backwards_and_a_second_order_pass():
    model = build_model("small_cnn", 1, 10, 8, seed=0)
    counter = SampleCounter()
    counter.attach(model)
    x = torch.randn(6, 1, 8, 8, requires_grad=True)
    out = model(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True)
    counter.add_second_order(6)
    (out.logsumexp(1).sum() + grad.pow(2).sum()).backward()
    assert counter.counts == SampleCounts(forward=6, backward=12, second_order=6)


def test_second_order_extra_is_measured_positive_and_below_a_full_step():
    costs = cost_model("small_cnn", 1, 10, 8)
    assert 0 < costs.second_order_per_sample < 6 * costs.forward_macs
