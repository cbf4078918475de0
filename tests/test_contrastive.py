"""The contrastive family: CU, HCU, CoUn and GP, against hand-computed values and on a tiny real cell."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from bench.flops import SampleCounts
from methods._contrastive import (
    EuclideanGeometry,
    StopRule,
    contrastive_loss,
    random_sample_loss,
    resolve_loss_form,
    single_class_loss,
    unlearning_loss,
)
from methods.coun import cross_view_infonce
from methods.gp import algorithm2_penalty, gradient_penalty, output_gradient_penalty
from methods.hcu import PoincareGeometry

SIM = torch.tensor([[0.5, -0.2, 0.1, 0.9],
                    [0.3, 0.8, -0.4, 0.0],
                    [-0.1, 0.2, 0.6, 0.4]])
ANCHOR_Y = torch.tensor([0, 1, 7])  # class 7 has no retain sample: no positive
RETAIN_Y = torch.tensor([0, 1, 0, 2])


def _hand_random_sample(sim: list[float], labels: list[int], anchor: int) -> float:
    pos = [s for s, y in zip(sim, labels) if y == anchor]
    neg = [s for s, y in zip(sim, labels) if y != anchor]
    log_pos = math.log(sum(math.exp(s) for s in pos))
    return -sum(s - log_pos for s in neg) / len(neg)


def _hand_single_class(sim: list[float], labels: list[int], anchor: int) -> float:
    neg = [s for s, y in zip(sim, labels) if y != anchor]
    return -sum(math.log(math.exp(s) / len(neg)) for s in neg) / len(neg)


# ---------------------------------------------------------------------------- CU / HCU losses


def test_random_sample_loss_matches_hand_computation():
    got = random_sample_loss(SIM, ANCHOR_Y, RETAIN_Y)
    labels = RETAIN_Y.tolist()
    for i in (0, 1):  # anchors with positives and negatives
        assert got[i].item() == pytest.approx(_hand_random_sample(SIM[i].tolist(), labels, int(ANCHOR_Y[i])), rel=1e-5)
    # anchor 0: negatives {-0.2, 0.9}, positives {0.5, 0.1}
    assert got[0].item() == pytest.approx(-(-0.2 + 0.9) / 2 + math.log(math.exp(0.5) + math.exp(0.1)), rel=1e-5)


def test_anchor_without_positive_falls_back_to_the_single_class_form_with_finite_gradients():
    sim = SIM.clone().requires_grad_(True)
    got = random_sample_loss(sim, ANCHOR_Y, RETAIN_Y)
    expected = _hand_single_class(SIM[2].tolist(), RETAIN_Y.tolist(), 7)  # all four retain samples are negatives
    assert got[2].item() == pytest.approx(expected, rel=1e-5)
    assert got[2].item() == pytest.approx(-SIM[2].mean().item() + math.log(4), rel=1e-5)
    got.sum().backward()
    assert torch.isfinite(sim.grad).all()
    # the fallback row's gradient is the single-class one: -1/|N| on every negative
    assert torch.allclose(sim.grad[2], torch.full((4,), -0.25))


def test_single_class_loss_matches_hand_computation():
    got = single_class_loss(SIM, ANCHOR_Y, RETAIN_Y)
    for i in range(3):
        assert got[i].item() == pytest.approx(_hand_single_class(SIM[i].tolist(), RETAIN_Y.tolist(), int(ANCHOR_Y[i])), rel=1e-5)
    # class-wise forgetting: no retain sample shares the anchor's class, so N_i is the whole retain batch
    assert got[2].item() == pytest.approx(-SIM[2].mean().item() + math.log(4), rel=1e-5)


def test_anchor_without_negative_contributes_zero_and_the_mean_is_over_all_anchors():
    sim = torch.tensor([[0.4, 0.7], [0.1, 0.2]])
    anchors, others = torch.tensor([3, 5]), torch.tensor([3, 3])  # anchor 0: positives only
    per_anchor = random_sample_loss(sim, anchors, others)
    assert per_anchor[0].item() == 0.0
    assert unlearning_loss(sim, anchors, others, "random_sample").item() == pytest.approx(per_anchor[1].item() / 2)
    assert single_class_loss(sim, anchors, others)[0].item() == 0.0


def test_loss_form_follows_the_scenario_unless_chosen():
    assert resolve_loss_form("auto", "random") == "random_sample"
    assert resolve_loss_form("auto", "class") == "single_class"
    assert resolve_loss_form("single_class", "random") == "single_class"


def test_euclidean_similarity_is_cosine_over_temperature():
    a, b = torch.tensor([[3.0, 4.0]]), torch.tensor([[1.0, 0.0], [0.0, -2.0]])
    sim = EuclideanGeometry().similarity(a, b, 0.5)
    assert torch.allclose(sim, torch.tensor([[0.6 / 0.5, -0.8 / 0.5]]))


# ---------------------------------------------------------------------------- hyperbolic geometry


def _poincare_distance(x: torch.Tensor, y: torch.Tensor, c: float) -> torch.Tensor:
    """Independent closed form: d = arcosh(1 + 2c|x-y|^2 / ((1-c|x|^2)(1-c|y|^2))) / sqrt(c)."""
    x, y = x.double(), y.double()
    sq = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    den = (1 - c * (x**2).sum(-1))[:, None] * (1 - c * (y**2).sum(-1))[None, :]
    return torch.acosh(1 + 2 * c * sq / den) / math.sqrt(c)


def _expmap0(v: torch.Tensor, c: float) -> torch.Tensor:
    norm = v.double().norm(dim=1, keepdim=True)
    return torch.tanh(math.sqrt(c) * norm) * v.double() / (math.sqrt(c) * norm)


@pytest.mark.parametrize("embedding", ["normalized", "scaled"])
def test_hyperbolic_similarity_matches_an_independent_distance_formula(embedding):
    c, tau = 0.744, 0.6
    gen = torch.Generator().manual_seed(0)
    anchors, others = torch.randn(3, 5, generator=gen), 0.5 * torch.randn(4, 5, generator=gen)
    geo = PoincareGeometry(c, embedding, radius=0.8, learn_scale=False, device=torch.device("cpu"))
    sim = geo.similarity(anchors, others, tau)
    if embedding == "normalized":
        va, vo = F.normalize(anchors, dim=1), F.normalize(others, dim=1)
    else:  # one common scale: the mean feature of the first batch gets tangent norm 0.8
        scale = 0.8 / torch.cat([anchors, others]).norm(dim=1).mean()
        va, vo = anchors * scale, others * scale
    expected = -_poincare_distance(_expmap0(va, c), _expmap0(vo, c), c) / tau
    assert torch.allclose(sim.double(), expected, rtol=1e-4, atol=1e-5)


def test_scaled_embedding_keeps_each_feature_radius_normalized_does_not():
    z = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    cpu = torch.device("cpu")
    normalized = PoincareGeometry(1.0, "normalized", 1.0, False, cpu).points(z).norm(dim=1)
    scaled = PoincareGeometry(1.0, "scaled", 1.0, False, cpu).points(z).norm(dim=1)
    assert normalized[0].item() == pytest.approx(normalized[1].item(), rel=1e-6)
    assert scaled[1] > scaled[0] * 1.2


@pytest.mark.parametrize("embedding", ["normalized", "scaled"])
@pytest.mark.parametrize("magnitude", [1.0, 1e4, 1e30])
def test_hyperbolic_embeddings_stay_inside_the_ball_with_finite_gradients(embedding, magnitude):
    c = 0.744
    gen = torch.Generator().manual_seed(1)
    feats = (magnitude * torch.randn(6, 16, generator=gen)).requires_grad_(True)
    geo = PoincareGeometry(c, embedding, 1.0, embedding == "scaled", torch.device("cpu"))
    points = geo.points(feats)
    assert points.dtype == torch.float32 and torch.isfinite(points).all()
    assert (points.norm(dim=1) < 1 / math.sqrt(c)).all()
    sim = geo.similarity(feats[:3], feats[3:], 0.6)
    labels = torch.tensor([0, 1, 2])
    loss = unlearning_loss(sim, labels, torch.tensor([0, 1, 1]), "random_sample")
    loss.backward()
    assert torch.isfinite(sim).all() and torch.isfinite(loss)
    assert torch.isfinite(feats.grad).all()


def test_hyperbolic_geometry_is_float32_for_bf16_features():
    feats = torch.randn(4, 8).bfloat16() * 50
    geo = PoincareGeometry(0.744, "scaled", 1.0, False, torch.device("cpu"))
    sim = geo.similarity(feats[:2], feats[2:], 0.6)
    assert sim.dtype == torch.float32 and torch.isfinite(sim).all()


# ---------------------------------------------------------------------------- CU / HCU procedure


def _batches(ctx, n: int):
    forget = ctx.sample(ctx.forget, n, augment=False)
    retain = ctx.sample(ctx.retain, 4 * n, augment=False)
    return forget, retain


@pytest.mark.parametrize("method", ["CU", "HCU"])
def test_one_step_moves_forget_embeddings_toward_other_classes_and_away_from_their_own(tiny_cell, method):
    cell = tiny_cell(method, "random10", params={"lambda_ce": 0.0, "lambda_ul": 1.0})
    ctx, settings = cell.ctx, cell.params
    geometry = settings.geometry(ctx)
    forget, retain = _batches(ctx, 16)
    same = forget.y[:, None] == retain.y[None, :]

    def mean_similarities() -> tuple[float, float]:
        with torch.no_grad():
            _, feats = ctx.forward(torch.cat([forget.x, retain.x]))
            sim = geometry.similarity(feats[:16], feats[16:], 1.0)
        return sim[same].mean().item(), sim[~same].mean().item()

    own_before, other_before = mean_similarities()
    opt = torch.optim.SGD(ctx.model.parameters(), lr=0.05)
    ctx.step(opt, contrastive_loss(ctx, settings, geometry, None, forget, retain, "random_sample"))
    own_after, other_after = mean_similarities()
    assert own_after < own_before  # pushed away from its own class
    assert other_after > other_before  # pulled toward the other classes


def _counting_optimizer_steps(ctx, monkeypatch) -> list[int]:
    steps = [0]
    make = ctx.sgd

    def sgd(*args, **kwargs):
        opt = make(*args, **kwargs)
        original_step = opt.step

        def step(*a, **k):
            steps[0] += 1
            return original_step(*a, **k)

        opt.step = step
        return opt

    monkeypatch.setattr(ctx, "sgd", sgd)
    return steps


def _recording_samples(ctx, monkeypatch) -> list[torch.Tensor]:
    drawn: list[torch.Tensor] = []
    sample = ctx.sample

    def record(data, batch_size, **kwargs):
        batch = sample(data, batch_size, **kwargs)
        drawn.append(data.index[batch.pos])
        return batch

    monkeypatch.setattr(ctx, "sample", record)
    return drawn


@pytest.mark.parametrize("semantics", ["omega_steps", "accumulate"])
def test_cu_pass_runs_omega_forwards_per_forget_batch_on_fresh_retain_batches(tiny_cell, monkeypatch, semantics):
    omega, b = 3, 64
    cell = tiny_cell("CU", "random10", params={"omega": omega, "batch_size": b, "max_passes": 1,
                                               "step_semantics": semantics})
    ctx = cell.ctx
    steps = _counting_optimizer_steps(ctx, monkeypatch)
    drawn = _recording_samples(ctx, monkeypatch)
    cell.params.run(ctx)
    n_forget, n_batches = len(ctx.forget), math.ceil(len(ctx.forget) / b)
    retain_per_pass = omega * n_batches * b
    evals = len(ctx.forget) + len(ctx.test)  # the stop rule's accuracies, counted apart from training
    assert cell.counter.counts == SampleCounts(omega * n_forget + retain_per_pass,
                                               omega * n_forget + retain_per_pass, 0, evals)
    assert steps[0] == (omega * n_batches if semantics == "omega_steps" else n_batches)
    assert len(drawn) == omega * n_batches
    assert len({tuple(sorted(d.tolist())) for d in drawn}) == len(drawn)  # a fresh retain batch every time
    retain_index = set(ctx.retain.index.tolist())
    assert all(set(d.tolist()) <= retain_index for d in drawn)


def test_fixed_retain_reuses_the_first_retain_samples(tiny_cell, monkeypatch):
    cell = tiny_cell("CU", "random10", params={"omega": 2, "batch_size": 32, "max_passes": 1, "fixed_retain": True})
    drawn = _recording_samples(cell.ctx, monkeypatch)
    cell.params.run(cell.ctx)
    first = set(cell.ctx.retain.index[:32].tolist())
    assert drawn and all(set(d.tolist()) == first for d in drawn)


def _scripted_accuracy(ctx, monkeypatch, script: dict[str, list[float]]) -> None:
    def accuracy(data, model=None):
        return script[data.name].pop(0)

    monkeypatch.setattr(ctx, "accuracy", accuracy)


def test_random_stop_rule_fires_after_the_pass_where_forget_accuracy_reaches_test_accuracy(tiny_cell, monkeypatch):
    cell = tiny_cell("CU", "random10", params={"omega": 1, "max_passes": 9})
    ctx = cell.ctx
    _scripted_accuracy(ctx, monkeypatch, {ctx.forget.name: [99.0, 95.0, 90.0], ctx.test.name: [90.0, 91.0, 90.0]})
    cell.params.run(ctx)
    assert ctx.info["passes"] == 3 and ctx.info["stop_rule_fired"] is True
    assert ctx.info["loss_form"] == "random_sample" and ctx.info["embedding"] == "penultimate"


def test_class_stop_rule_uses_the_forgotten_class_test_accuracy_against_100_over_c(tiny_cell, monkeypatch):
    cell = tiny_cell("CU", "class3", params={"omega": 1, "max_passes": 9})
    ctx = cell.ctx
    rule = StopRule(ctx)
    assert set(rule.class_test.labels.tolist()) == {3} and len(rule.class_test) == int((ctx.test.labels == 3).sum())
    _scripted_accuracy(ctx, monkeypatch, {rule.class_test.name: [50.0, 100.0 / ctx.num_classes + 0.01,
                                                                  100.0 / ctx.num_classes]})
    cell.params.run(ctx)
    assert ctx.info["passes"] == 3 and ctx.info["stop_rule_fired"] is True
    assert ctx.info["loss_form"] == "single_class"


def test_stop_rule_that_never_fires_is_bounded_by_max_passes(tiny_cell, monkeypatch):
    cell = tiny_cell("HCU", "random10", params={"omega": 1, "max_passes": 2})
    ctx = cell.ctx
    _scripted_accuracy(ctx, monkeypatch, {ctx.forget.name: [99.0, 99.0], ctx.test.name: [90.0, 90.0]})
    cell.params.run(ctx)
    assert ctx.info["passes"] == 2 and ctx.info["stop_rule_fired"] is False
    assert ctx.info["geometry"] == "poincare"


def test_projection_head_is_built_from_the_feature_dim_and_trained_along(tiny_cell, monkeypatch):
    cell = tiny_cell("CU", "random10", params={"embedding": "projection_head", "omega": 1, "max_passes": 1})
    ctx = cell.ctx
    groups, initial = [], []

    def sgd(params, **kw):
        groups.extend(params)
        initial.extend(p.detach().clone() for p in params[0]["params"])
        return make(params, **kw)

    make = ctx.sgd
    monkeypatch.setattr(ctx, "sgd", sgd)
    cell.params.run(ctx)
    n_model = len(list(ctx.model.parameters()))
    head = groups[0]["params"][n_model:]
    d = ctx.model.feature_dim
    assert [tuple(p.shape) for p in head] == [(d, d), (d,), (128, d), (128,)]
    assert all(not torch.equal(p, p0) for p, p0 in zip(head, initial[n_model:]))  # trained along


def test_learnable_scale_is_trained_without_weight_decay(tiny_cell, monkeypatch):
    cell = tiny_cell("HCU", "random10", params={"hyperbolic_embedding": "scaled", "learn_scale": True,
                                                "omega": 1, "max_passes": 1, "lr": 0.05})
    ctx = cell.ctx
    groups = []
    make = ctx.sgd
    monkeypatch.setattr(ctx, "sgd", lambda params, **kw: groups.extend(params) or make(params, **kw))
    cell.params.run(ctx)
    log_scale = groups[1]["params"][0]
    assert groups[1]["weight_decay"] == 0.0 and log_scale.shape == () and log_scale.item() != 0.0
    assert ctx.info["hyperbolic_embedding"] == "scaled" and ctx.info["first_batch_mean_norm"] > 0


# ---------------------------------------------------------------------------- CoUn


def test_cross_view_infonce_matches_hand_computation():
    z = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    zp = torch.tensor([[0.0, 2.0], [1.0, 1.0]])
    tau = 0.5
    cos = [[F.cosine_similarity(z[n], zp[j], dim=0).item() / tau for j in range(2)] for n in range(2)]

    def direction(s):
        return -sum(s[n][n] - math.log(sum(math.exp(v) for v in s[n])) for n in range(2)) / 2

    transposed = [[cos[j][n] for j in range(2)] for n in range(2)]
    assert cross_view_infonce(z, zp, tau).item() == pytest.approx(direction(cos) + direction(transposed), rel=1e-5)


class _Poisoned:
    def __getattr__(self, name):
        raise AssertionError(f"CoUn touched the forget set ({name})")

    def __len__(self):
        raise AssertionError("CoUn touched the forget set (len)")


@pytest.mark.parametrize("view_forward", ["joint", "separate"])
def test_coun_never_reads_a_forget_sample_and_counts_two_trained_views(tiny_cell, monkeypatch, view_forward):
    cell = tiny_cell("CoUn", "random10", params={"epochs": 1, "batch_size": 256, "view_forward": view_forward})
    ctx = cell.ctx
    forget_index = set(ctx.forget.index.tolist())
    read: list[int] = []
    batch_at = ctx.engine.batch_at

    def record(data, pos, generator, augment):
        read.extend(data.index[pos].tolist())
        return batch_at(data, pos, generator, augment)

    monkeypatch.setattr(ctx.engine, "batch_at", record)
    monkeypatch.setattr(ctx, "forget", _Poisoned())
    cell.params.run(ctx)
    assert sorted(read) == sorted(ctx.retain.index.tolist())  # one pass over D_r, nothing else
    assert not forget_index & set(read)
    n = len(ctx.retain)
    assert cell.counter.counts == SampleCounts(2 * n, 2 * n, 0)  # 2 views x (2F + 4F) = 12F per sample-step


def test_coun_views_are_independent_augmentations_of_the_same_images(tiny_cell, monkeypatch):
    cell = tiny_cell("CoUn", "random10", params={"epochs": 1})
    ctx, coun = cell.ctx, cell.params
    seen = []
    monkeypatch.setattr(type(coun), "loss", lambda self, c, v1, v2, y: seen.append((v1, v2)) or
                        torch.zeros((), requires_grad=True))
    coun.run(ctx)
    v1, v2 = seen[0]
    assert v1.shape == v2.shape and not torch.equal(v1, v2)


# ---------------------------------------------------------------------------- GP


def test_gradient_penalty_formula():
    grad = torch.tensor([[[3.0, 4.0]], [[0.0, 0.5]]])  # per-sample norms 5 and 0.5
    assert gradient_penalty(grad).item() == pytest.approx(((5 - 1) ** 2 + (0.5 - 1) ** 2) / 2)
    assert gradient_penalty(grad, None).item() == pytest.approx((25 + 0.25) / 2)


def test_algorithm2_penalty_is_the_printed_listing_without_a_square():
    grad = torch.tensor([[[3.0, 4.0]], [[0.0, 0.5]]])  # per-sample norms 5 and 0.5
    assert algorithm2_penalty(grad).item() == pytest.approx(((5 - 1) + (0.5 - 1)) / 2)


def _own_input_gradients(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Each sample's `grad_{x_i} sum_k f(x_i)_k`, one sample at a time, BatchNorm at its running
    statistics: the spec's per-sample quantity, computed independently of methods/gp.py."""
    probe = copy.deepcopy(model).eval()
    rows = []
    for xi in x:
        xi = xi[None].clone().requires_grad_(True)
        (g,) = torch.autograd.grad(probe(xi).sum(), xi)
        rows.append(g[0])
    return torch.stack(rows)


@pytest.mark.parametrize("mode", ["frozen", "vmap"])
def test_gp_penalty_is_each_samples_own_input_gradient_in_train_mode(tiny_cell, mode):
    cell = tiny_cell("GP", "random10", params={"penalty_bn": mode})
    ctx = cell.ctx
    assert ctx.model.training  # the mode the method runs in: no switching to eval first
    x = ctx.sample(ctx.forget, 16, augment=False).x
    expected = _own_input_gradients(ctx.model, x)
    running_mean = ctx.model.backbone[1].running_mean.clone()
    _, grad = output_gradient_penalty(ctx, x, penalty_bn=mode, penalty=lambda g: g, logits_in_loss=False)
    assert torch.allclose(grad, expected, rtol=1e-4, atol=1e-6)
    assert torch.equal(ctx.model.backbone[1].running_mean, running_mean)  # the penalty pass moves no statistics
    assert ctx.model.training
    # the other samples of the batch do not matter
    others = ctx.sample(ctx.retain, 15, augment=False).x
    _, grad_b = output_gradient_penalty(ctx, torch.cat([x[:1], others]), penalty_bn=mode, penalty=lambda g: g)
    assert torch.allclose(grad_b[0], grad[0], rtol=1e-4, atol=1e-6)
    # differentiable again: the penalty has a gradient with respect to the weights
    _, penalty = output_gradient_penalty(ctx, x, penalty_bn=mode)
    (weight_grad,) = torch.autograd.grad(penalty, ctx.model.backbone[0].weight)
    assert torch.isfinite(weight_grad).all() and weight_grad.abs().sum() > 0


def test_gp_batch_mode_is_the_coupled_form_it_is_kept_for(tiny_cell):
    cell = tiny_cell("GP", "random10", params={"penalty_bn": "batch"})
    ctx = cell.ctx
    x = ctx.sample(ctx.forget, 16, augment=False).x
    _, grad = output_gradient_penalty(ctx, x, penalty_bn="batch", penalty=lambda g: g)
    xr = x.clone().requires_grad_(True)
    (coupled,) = torch.autograd.grad(ctx.model(xr).sum(), xr)  # train mode: batch statistics
    assert torch.allclose(grad, coupled, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(grad, _own_input_gradients(ctx.model, x), rtol=1e-2, atol=1e-4)


@pytest.mark.parametrize("form", ["simplified", "algorithm2"])
def test_gp_loss_the_method_steps_on_uses_the_per_sample_penalty(tiny_cell, form):
    cell = tiny_cell("GP", "random10", params={"form": form, "alpha": 0.7, "beta": 3.0})
    ctx, gp = cell.ctx, cell.params
    assert gp.penalty_bn == "frozen"  # the default is per sample
    batch = ctx.sample(ctx.forget, 16, augment=False)
    loss = gp.forget_loss(ctx, batch.x, batch.y)
    norms = _own_input_gradients(ctx.model, batch.x).flatten(1).norm(dim=1)
    penalty = ((norms - 1) ** 2).mean() if form == "simplified" else (norms - 1).mean()
    probe = copy.deepcopy(ctx.model).eval()
    expected = 0.7 * F.cross_entropy(probe(batch.x), batch.y) + 3.0 * penalty
    assert loss.item() == pytest.approx(expected.item(), rel=1e-4)


@pytest.mark.parametrize("form,mode,expected", [
    ("simplified", "frozen", (1, 2, 1)), ("simplified", "batch", (1, 2, 1)), ("simplified", "vmap", (2, 3, 1)),
    ("algorithm2", "frozen", (1, 2, 1)), ("full", "frozen", (2, 3, 1)), ("full", "vmap", (2, 3, 1))])
def test_gp_cost_counts_the_double_backward(tiny_cell, form, mode, expected):
    cell = tiny_cell("GP", "random10", params={"form": form, "penalty_bn": mode, "epochs": 1},
                     eval={"nonmember_pool": "test-half"})
    cell.params.run(cell.ctx)
    n = len(cell.ctx.forget)
    fwd, bwd, second = expected
    assert cell.counter.counts == SampleCounts(fwd * n, bwd * n, second * n)
    assert cell.cost_model.second_order_per_sample > 0
    assert cell.ctx.info["form"] == form and cell.ctx.info["penalty_bn"] == mode


def test_gp_full_form_draws_non_members_from_the_held_out_pool_only(tiny_cell, monkeypatch):
    cell = tiny_cell("GP", "random10", params={"form": "full", "epochs": 2}, eval={"nonmember_pool": "test-half"})
    ctx, sets = cell.ctx, cell.sets
    pool = set(sets.nonmember_pool.index.tolist())
    evaluated = set(sets.test.index.tolist())
    assert pool and not pool & evaluated and set(ctx.test.index.tolist()) == evaluated
    drawn: list[int] = []
    sample = ctx.sample

    def record(data, batch_size, **kwargs):
        batch = sample(data, batch_size, **kwargs)
        drawn.extend(data.index[batch.pos].tolist())
        return batch

    monkeypatch.setattr(ctx, "sample", record)
    ctx.test = _Poisoned()  # D_t is not read at all
    cell.params.run(ctx)
    assert drawn and set(drawn) <= pool


def test_gp_full_form_without_a_pool_fails_and_says_how_to_get_one(tiny_spec):
    from bench.cell import execute_cell

    record = execute_cell(tiny_spec("GP", "random10", params={"form": "full", "epochs": 1}))
    assert record["status"] == "failed" and "nonmember_pool" in record["error"]
