"""The training step as a function of its inputs (bench/captured.py), on the CPU.

CUDA graphs need a GPU (tests/test_cuda.py checks the real capture). Here a CPU
stand-in with a graph's observable behaviour checks everything around it: warm-up,
one graph per input signature, static buffers, the learning rate as a tensor the
replays read, explicit FLOP counts per replay, the fallback when capture fails;
and that the methods rewritten to use `ctx.train_step` compute exactly what their
old loops computed.
"""

from __future__ import annotations

import contextlib
import copy

import pytest
import torch
import torch.nn.functional as F

from baselines.l1_sparse import l1_norm
from baselines.neggrad_plus import neggrad_plus_loss
from baselines.salun import masked_update_hook
from bench.captured import CAPTURE_ENV, StepStats, TrainStep
from bench.engine import Engine
from bench.flops import SampleCounts


class RerunGraphs:
    """A CPU stand-in for CUDA graphs: `capture` runs the step once and puts every tensor it
    changed back (a real capture records kernels without running them); a replay runs the
    step again, rewrites the same output tensor and puts the hooks' counts back (a real
    replay runs no Python, so no hook fires)."""

    def __init__(self, model, optimizer, counter, fail: bool = False):
        self.model, self.optimizer, self.counter, self.fail = model, optimizer, counter, fail
        self.captures = 0
        self.warmups = 0

    @contextlib.contextmanager
    def warmup(self):
        self.warmups += 1
        yield

    def _state(self) -> list[torch.Tensor]:
        momenta = [s["momentum_buffer"] for s in self.optimizer.state.values() if s.get("momentum_buffer") is not None]
        return list(self.model.state_dict().values()) + momenta

    def capture(self, body):
        state = self._state()
        saved = [t.clone() for t in state]
        out = body()
        for t, s in zip(state, saved):
            t.copy_(s)
        if self.fail:  # e.g. an op that is not allowed while capturing
            raise RuntimeError("operation not permitted when stream is capturing")
        self.captures += 1

        def replay() -> None:
            before = copy.copy(self.counter.counts)
            out.copy_(body())
            self.counter.counts = before

        return replay, out


def use_rerun_graphs(monkeypatch, cell, fail: bool = False, warmup: int = 2, max_graphs: int = 4) -> list[TrainStep]:
    """Make `cell`'s engine build TrainSteps on RerunGraphs; returns the steps it builds."""
    made: list[TrainStep] = []
    engine = cell.ctx.engine

    def train_step(optimizer, loss_fn, *, before_step=None, counter=None, before_replay=None):
        graphs = RerunGraphs(cell.ctx.model, optimizer, counter, fail=fail)
        step = TrainStep(loss_fn, optimizer, before_step=before_step, counter=counter, graphs=graphs,
                         warmup=warmup, max_graphs=max_graphs, before_replay=before_replay)
        made.append(step)
        return step

    monkeypatch.setattr(engine, "train_step", train_step)
    return made


def _params(cell) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in cell.model.state_dict().items()}


def _assert_close_states(a: dict, b: dict, exact: bool) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if exact:
            assert torch.equal(a[k], b[k]), k
        else:
            torch.testing.assert_close(a[k].float(), b[k].float(), rtol=1e-4, atol=1e-5, msg=k)


def _run(cell):
    cell.params.run(cell.ctx)
    return _params(cell), copy.copy(cell.counter.counts)


# ---------------------------------------------------------------------------- the graph path's bookkeeping


@pytest.mark.parametrize("method", ["FT", "l1-sparse", "NegGrad+", "SalUn", "RL", "GA"])
def test_replayed_steps_match_eager_steps_and_count_the_same_samples(tiny_cell, monkeypatch, method):
    eager = tiny_cell(method)
    eager_state, eager_counts = _run(eager)
    assert eager.ctx.step_stats()["path"] == "eager"  # the CPU has no graphs

    graphed = tiny_cell(method)
    steps = use_rerun_graphs(monkeypatch, graphed)
    state, counts = _run(graphed)
    stats = graphed.ctx.step_stats()
    assert stats["path"] == "cuda_graph" and stats["graphs"] >= 1 and stats["fallback"] is None
    assert stats["replayed_steps"] > stats["eager_steps"]  # most steps came from a graph
    assert counts == eager_counts  # hooks do not fire on replay: the counts are added explicitly
    assert sum(s.graphs.captures for s in steps) == stats["graphs"]
    # float32 tensor lr on replays vs the float lr of eager steps: equal up to rounding
    _assert_close_states(state, eager_state, exact=False)


def test_replays_follow_the_schedule_through_the_lr_tensor(tiny_cell, monkeypatch):
    """FT's cosine schedule changes lr every step; replays must use the current value."""
    eager_state, _ = _run(tiny_cell("FT", params={"epochs": 8, "lr": 0.2, "final_lr": 0.0}))
    graphed = tiny_cell("FT", params={"epochs": 8, "lr": 0.2, "final_lr": 0.0})
    steps = use_rerun_graphs(monkeypatch, graphed)
    state, _ = _run(graphed)
    lr_tensor = steps[0]._lrs[0]
    assert lr_tensor.item() == pytest.approx(steps[0]._lr_values[0], rel=1e-6)
    assert lr_tensor.item() < 0.01  # refilled along the cosine from 0.2 (last replayed step: near its end)
    assert isinstance(steps[0].optimizer.param_groups[0]["lr"], float)  # the scheduler still sees floats
    _assert_close_states(state, eager_state, exact=False)


def test_warmup_then_one_graph_per_signature_and_eager_beyond_the_limit(tiny_cell, monkeypatch):
    cell = tiny_cell("FT")
    steps = use_rerun_graphs(monkeypatch, cell, warmup=2, max_graphs=1)
    cell.params.run(cell.ctx)
    (step,) = steps
    n = len(cell.ctx.retain)
    full, per_epoch = n // 256, -(-n // 256)
    epochs = cell.params.epochs
    assert n % 256  # the retain set ends in a partial batch
    # the full-batch signature: 2 warm-up steps, then captured; the partial batch: eager (graph limit 1)
    assert step.graphs.warmups == 2 and step.graphs.captures == 1
    assert step.stats.replayed_steps == epochs * full - 2
    assert step.stats.eager_steps == 2 + epochs * (per_epoch - full)


def test_a_failed_capture_falls_back_to_eager_with_the_reason_and_exact_eager_results(tiny_cell, monkeypatch):
    eager_state, eager_counts = _run(tiny_cell("SalUn"))
    cell = tiny_cell("SalUn")
    use_rerun_graphs(monkeypatch, cell, fail=True)
    state, counts = _run(cell)
    stats = cell.ctx.step_stats()
    assert stats["path"] == "eager" and stats["replayed_steps"] == 0
    assert stats["fallback"] == "RuntimeError: operation not permitted when stream is capturing"
    assert counts == eager_counts  # what the failed capture's hooks counted was taken back
    _assert_close_states(state, eager_state, exact=True)


def test_number_inputs_become_device_scalars_that_change_between_replays():
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.5)
    seen = []

    def loss_fn(x, scale):
        seen.append(scale)
        return scale * (w * x).sum()

    step = TrainStep(loss_fn, opt)
    step(torch.ones(3), 2.0)
    step(torch.ones(3), 0.0)
    assert all(isinstance(s, torch.Tensor) and s.dim() == 0 for s in seen)
    assert seen[0] is seen[1]  # one buffer per input position, refilled
    assert torch.equal(w.detach(), torch.zeros(3))  # 1 - 0.5*2, then no gradient at scale 0
    with pytest.raises(TypeError, match="tensors and numbers only"):
        step(torch.ones(3), "x")


class NoOpGraphs:
    """Captures by running the step once; a replay only says it ran (no hooks, like a real one)."""

    def __init__(self):
        self.replays = 0

    def warmup(self):
        return contextlib.nullcontext()

    def capture(self, body):
        out = body()

        def replay() -> None:
            self.replays += 1

        return replay, out


def test_before_replay_runs_before_every_replay_and_can_stop_it():
    """A tuning cap checks in a forward hook, which a replay never runs: `before_replay` stands in."""
    w = torch.nn.Parameter(torch.ones(3))
    opt = torch.optim.SGD([w], lr=0.1)
    graphs, checks = NoOpGraphs(), []

    def check() -> None:
        checks.append(graphs.replays)
        if len(checks) == 3:
            raise RuntimeError("cap reached")

    step = TrainStep(lambda x: (w * x).sum(), opt, graphs=graphs, warmup=1, before_replay=check)
    step(torch.ones(3))  # warm-up, eager: no check from here
    step(torch.ones(3))  # capture, then replay 1
    step(torch.ones(3))  # replay 2
    with pytest.raises(RuntimeError, match="cap reached"):
        step(torch.ones(3))
    assert checks == [0, 1, 2]  # each check ran before its replay
    assert graphs.replays == 2 and step.stats.replayed_steps == 2  # the stopped replay did not run


def test_a_tuning_cap_stops_a_captured_method(tiny_spec, monkeypatch):
    """The cell wires the budget guard into `ctx.before_replay`: a captured FT is stopped too."""
    import dataclasses

    from bench.cell import prepare_cell, run_cell
    from bench.tune.budget import BudgetExceeded

    spec = dataclasses.replace(tiny_spec("FT"), tuning={"holdout": 0.2, "holdout_seed": 0, "budget_pflops": 1e-9})
    real_prepare = prepare_cell
    made = []

    def prepare_with_rerun_graphs(*args, **kwargs):
        cell = real_prepare(*args, **kwargs)
        made.append(use_rerun_graphs(monkeypatch, cell))  # filled as the method builds its steps
        cell.model.backbone.register_forward_pre_hook = lambda hook: _NoHandle()  # only the replay check remains
        return cell

    monkeypatch.setattr("bench.cell.prepare_cell", prepare_with_rerun_graphs)
    with pytest.raises(BudgetExceeded, match="compute cap reached"):
        run_cell(spec)
    ft_step = made[0][-1]  # (the engine also trained this split's Retrain before FT ran)
    assert ft_step.stats.eager_steps == 2  # the two warm-up steps ran
    assert ft_step.stats.replayed_steps == 0  # the cap stopped the first replay


class _NoHandle:
    def remove(self) -> None:
        pass


def test_step_stats_merge():
    a = StepStats(path="cuda_graph", replayed_steps=10, eager_steps=3, graphs=1)
    b = StepStats(eager_steps=4, fallback="RuntimeError: x")
    assert StepStats.merge([a, b]) == {"path": "cuda_graph", "replayed_steps": 10, "eager_steps": 7, "graphs": 1,
                                       "fallback": "RuntimeError: x"}
    assert StepStats.merge([]) is None


def test_capture_is_off_on_the_cpu_and_by_flag_or_environment(monkeypatch):
    from bench.data.catalog import Augment

    aug = Augment(1, False)
    assert Engine("cpu", (0.5,), (0.25,), aug, cuda_graphs=True).graph_backend() is None
    monkeypatch.setenv(CAPTURE_ENV, "0")
    assert not Engine("cpu", (0.5,), (0.25,), aug).cuda_graphs
    if torch.cuda.is_available():
        assert not Engine("cuda", (0.5,), (0.25,), aug).cuda_graphs
        monkeypatch.delenv(CAPTURE_ENV)
        assert Engine("cuda", (0.5,), (0.25,), aug).cuda_graphs
        assert not Engine("cuda", (0.5,), (0.25,), aug, cuda_graphs=False).cuda_graphs


def test_the_record_says_which_path_the_steps_took(tiny_spec):
    from bench.cell import run_cell

    record = run_cell(tiny_spec("FT"))
    assert record["timing"]["train_step"] == {"path": "eager", "replayed_steps": 0, "eager_steps": 252,
                                              "graphs": 0, "fallback": None}  # 42 epochs (default) x 6 batches of D_r
    retrain = run_cell(tiny_spec("Retrain"))
    assert retrain["timing"]["train_step"]["path"] == "eager"
    assert retrain["timing"]["train_step"]["eager_steps"] == 3 * 11  # TINY_TRAIN: 3 epochs, 11 batches of 128


# ---------------------------------------------------------------------------- same results as the old loops


def _old_loop(ctx, opt, sched, batches, loss_of, before_step=None):
    for args in batches:
        ctx.step(opt, loss_of(*args), sched, before_step=before_step)


def test_ft_is_exactly_its_old_loop(tiny_cell):
    new = tiny_cell("FT")
    new_state, new_counts = _run(new)
    old = tiny_cell("FT")
    ctx, p = old.ctx, old.params
    opt = ctx.sgd(ctx.model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    sched = ctx.cosine(opt, p.epochs * ctx.steps_per_epoch(ctx.retain, p.batch_size), p.final_lr)
    for _ in range(p.epochs):
        _old_loop(ctx, opt, sched, ((b.x, b.y) for b in ctx.batches(ctx.retain, p.batch_size)),
                  lambda x, y: F.cross_entropy(ctx.logits(x), y))
    _assert_close_states(new_state, _params(old), exact=True)
    assert new_counts == old.counter.counts


@pytest.mark.parametrize("no_l1_epochs", [0, 4])  # 4: half the epochs at gamma_t = 0
def test_l1_sparse_is_exactly_its_old_loop(tiny_cell, no_l1_epochs):
    new = tiny_cell("l1-sparse", params={"no_l1_epochs": no_l1_epochs})
    new_state, _ = _run(new)
    old = tiny_cell("l1-sparse", params={"no_l1_epochs": no_l1_epochs})
    ctx, p, model = old.ctx, old.params, old.ctx.model
    gammas = p.penalty_weights(ctx.steps_per_epoch(ctx.retain, p.batch_size))
    opt = ctx.sgd(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    sched = ctx.cosine(opt, len(gammas), p.final_lr)
    t = 0
    for _ in range(p.epochs):
        for batch in ctx.batches(ctx.retain, p.batch_size):
            loss = F.cross_entropy(ctx.logits(batch.x), batch.y)
            if gammas[t] > 0:
                loss = loss + gammas[t] * l1_norm(model)
            ctx.step(opt, loss, sched)
            t += 1
    _assert_close_states(new_state, _params(old), exact=True)


def test_neggrad_plus_is_exactly_its_old_loop(tiny_cell):
    from baselines._common import cycle_batches

    new_state, _ = _run(tiny_cell("NegGrad+"))
    old = tiny_cell("NegGrad+")
    ctx, p = old.ctx, old.params
    opt = ctx.sgd(ctx.model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    sched = ctx.cosine(opt, p.epochs * ctx.steps_per_epoch(ctx.retain, p.batch_size), p.final_lr)
    forget_batches = cycle_batches(ctx, ctx.forget, p.forget_batch_size)
    for _ in range(p.epochs):
        for retain in ctx.batches(ctx.retain, p.batch_size):
            forget = next(forget_batches)
            loss = neggrad_plus_loss(ctx.logits(retain.x), retain.y, ctx.logits(forget.x), forget.y, p.beta)
            ctx.step(opt, loss, sched)
    _assert_close_states(new_state, _params(old), exact=True)


def test_salun_is_exactly_its_old_loop(tiny_cell):
    from baselines._common import RandomLabelEpochs, schedule

    new_state, _ = _run(tiny_cell("SalUn"))
    old = tiny_cell("SalUn")
    ctx, p = old.ctx, old.params
    masks = p.saliency_mask(ctx)
    mask_step = masked_update_hook(list(ctx.model.parameters()), masks, p.weight_decay)
    epoch_batches = RandomLabelEpochs(ctx, p.batch_size, p.order, p.label_draw)
    opt = ctx.sgd(ctx.model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=0.0)
    sched = schedule(ctx, opt, p.lr_schedule, p.epochs * epoch_batches.steps(), p.final_lr)
    for _ in range(p.epochs):
        for batch, targets, _ in epoch_batches:
            ctx.step(opt, F.cross_entropy(ctx.logits(batch.x), targets), sched, before_step=mask_step)
    _assert_close_states(new_state, _params(old), exact=True)


def test_supervised_training_is_exactly_its_old_loop(tiny_cell):
    """Original/Retrain's loop (Engine.train_supervised) through TrainStep, against the old loop."""
    from bench.engine import TrainRecipe
    from bench.models import build_model

    cell = tiny_cell("Original")
    engine, data = cell.engine, cell.ctx.retain
    recipe = TrainRecipe(epochs=2, batch_size=100, lr=0.05)
    new = build_model("small_cnn", 1, 10, 8, seed=3)
    stats = engine.train_supervised(new, data, recipe, seed=5)
    assert stats["step"]["eager_steps"] == 2 * 13 and stats["step"]["path"] == "eager"

    old = build_model("small_cnn", 1, 10, 8, seed=3)
    generator = engine.generator(5)
    opt = engine.sgd(old.parameters(), recipe.lr, recipe.momentum, recipe.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=recipe.milestone_epochs(), gamma=recipe.gamma)
    old.train()
    for _ in range(recipe.epochs):
        for batch in engine.batches(data, recipe.batch_size, generator):
            with engine.autocast():
                loss = F.cross_entropy(old(batch.x), batch.y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        sched.step()
    _assert_close_states(new.state_dict(), old.state_dict(), exact=True)


def test_sample_counts_subtract():
    assert SampleCounts(5, 4, 3) - SampleCounts(1, 2, 3) == SampleCounts(4, 2, 0)
