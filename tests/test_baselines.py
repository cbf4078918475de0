"""What defines each baseline, checked on small tensors or a tiny digits cell (a few steps each)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from baselines._common import RandomLabelEpochs, random_labels
from baselines.l1_sparse import L1Sparse, l1_norm
from baselines.neggrad_plus import neggrad_plus_loss
from baselines.salun import top_fraction_masks
from baselines.scrub import distill_kl


# ---------------------------------------------------------------------- helpers

@torch.no_grad()
def eval_ce(cell, data) -> float:
    """Mean CE of the cell's model on `data`: eval mode, no augmentation, one batch (digits are tiny)."""
    model = cell.model
    model.eval()
    try:
        x = cell.engine.to_input(data.images, None, augment=False)
        return F.cross_entropy(model(x), data.labels).item()
    finally:
        model.train()


def snapshot(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def sizes(cell) -> tuple[int, int]:
    return len(cell.ctx.retain), len(cell.ctx.forget)


# ---------------------------------------------------------------------- FT

def test_ft_trains_on_the_retain_set_only(tiny_cell):
    cell = tiny_cell("FT", params={"epochs": 1})
    n_retain, _ = sizes(cell)
    cell.params.run(cell.ctx)
    assert cell.counter.counts.forward == n_retain
    assert cell.counter.counts.backward == n_retain


# ---------------------------------------------------------------------- random labels (RL, SalUn)

def test_random_labels_never_keep_the_true_label():
    labels = torch.arange(10).repeat(500)
    gen = torch.Generator().manual_seed(0)
    drawn = random_labels(labels, 10, gen, "other")
    assert (drawn != labels).all()
    offsets = (drawn - labels) % 10
    assert set(offsets.tolist()) == set(range(1, 10))  # every wrong class is reachable
    # the reference code's draw keeps the true label about 1 time in 10
    same = (random_labels(labels, 10, gen, "any") == labels).float().mean().item()
    assert 0.05 < same < 0.15


@pytest.mark.parametrize("order", ["forget_then_retain", "mixed"])
def test_rl_epoch_relabels_every_forget_sample_and_no_retain_sample(tiny_cell, order):
    cell = tiny_cell("RL")
    ctx = cell.ctx
    n_retain, n_forget = sizes(cell)
    seen_forget = seen = 0
    for batch, targets, is_forget in RandomLabelEpochs(ctx, 64, order, "other"):
        assert (targets[is_forget] != batch.y[is_forget]).all()
        assert torch.equal(targets[~is_forget], batch.y[~is_forget])
        seen_forget += int(is_forget.sum())
        seen += len(batch)
    assert (seen_forget, seen) == (n_forget, n_forget + n_retain)


def test_rl_flags_mark_forget_images(tiny_cell):
    """In the mixed order, a sample flagged as forget carries a D_f image."""
    cell = tiny_cell("RL")
    ctx = cell.ctx
    forget_images = ctx.forget.images.flatten(1)
    for batch, _, is_forget in RandomLabelEpochs(ctx, 64, "mixed", "other"):
        flat = batch.raw.flatten(1)
        in_forget = (flat[:, None, :] == forget_images[None, :, :]).all(-1).any(1)
        assert torch.equal(in_forget[is_forget], torch.ones_like(in_forget[is_forget]))


def test_rl_trains_on_forget_and_retain_each_epoch(tiny_cell):
    cell = tiny_cell("RL", params={"epochs": 1, "batch_size": 512})
    n_retain, n_forget = sizes(cell)
    cell.params.run(cell.ctx)
    assert cell.counter.counts.backward == n_retain + n_forget


# ---------------------------------------------------------------------- SalUn

def test_top_fraction_masks_global_and_per_layer():
    scores = [torch.tensor([0.1, 5.0, 0.2]), torch.tensor([[3.0, 0.05], [4.0, 0.3]])]
    glob = top_fraction_masks(scores, 0.5, "global")  # int(0.5 * 7) = 3 kept: 5, 4, 3
    assert glob[0].tolist() == [0, 1, 0] and glob[1].tolist() == [[1, 0], [1, 0]]
    per = top_fraction_masks(scores, 0.5, "per_layer")  # int(1.5) = 1 and int(2) = 2
    assert per[0].tolist() == [0, 1, 0] and per[1].tolist() == [[1, 0], [1, 0]]
    glob = top_fraction_masks(scores, 0.3, "global")  # int(2.1) = 2 kept: 5 and 4
    assert glob[0].tolist() == [0, 1, 0] and glob[1].tolist() == [[0, 0], [1, 0]]
    per = top_fraction_masks(scores, 0.3, "per_layer")  # int(0.9) = 0 and int(1.2) = 1
    assert per[0].tolist() == [0, 0, 0] and per[1].tolist() == [[0, 0], [1, 0]]


def test_salun_mask_is_the_top_saliency_and_its_pass_is_counted(tiny_cell):
    ratio = 0.3
    cell = tiny_cell("SalUn", params={"mask_ratio": ratio, "mask_augment": False})
    ctx, model = cell.ctx, cell.model
    n_forget = len(ctx.forget)
    masks = cell.params.saliency_mask(ctx)
    assert cell.counter.counts.forward == n_forget and cell.counter.counts.backward == n_forget
    assert model.training and all(p.grad is None for p in model.parameters())

    # the saliency computed independently: |d CE_sum(D_f) / d theta| in eval mode
    model.eval()
    x = cell.engine.to_input(ctx.forget.images, None, augment=False)
    grads = torch.autograd.grad(F.cross_entropy(model(x), ctx.forget.labels, reduction="sum"), list(model.parameters()))
    model.train()
    saliency = torch.cat([g.abs().flatten() for g in grads])
    kept = torch.cat([m.flatten() for m in masks]).bool()
    assert int(kept.sum()) == int(ratio * kept.numel())
    slack = 1e-5 * saliency.max()
    assert saliency[kept].min() >= saliency[~kept].max() - slack


def test_salun_leaves_every_masked_out_weight_bit_identical(tiny_cell):
    cell = tiny_cell("SalUn", params={"epochs": 1, "mask_ratio": 0.5, "lr": 0.05, "weight_decay": 5e-2, "batch_size": 512})
    ctx, model = cell.ctx, cell.model
    masks = cell.params.saliency_mask(ctx)
    before = snapshot(model)
    cell.params.unlearn(ctx, masks)
    moved_in = 0
    for p, b, m in zip(model.parameters(), before, masks):
        keep = m.bool()
        assert torch.equal(p.detach()[~keep], b[~keep])  # exactly, weight decay included
        moved_in += int((p.detach()[keep] != b[keep]).sum())
    assert moved_in > 0.5 * sum(int(m.sum()) for m in masks)  # the masked-in weights did train


# ---------------------------------------------------------------------- NegGrad+

def test_neggrad_plus_loss_is_the_weighted_difference():
    gen = torch.Generator().manual_seed(0)
    lr_, lf = torch.randn(6, 4, generator=gen), torch.randn(5, 4, generator=gen)
    yr, yf = torch.randint(0, 4, (6,), generator=gen), torch.randint(0, 4, (5,), generator=gen)
    expected = 0.9 * F.cross_entropy(lr_, yr) - 0.1 * F.cross_entropy(lf, yf)
    assert torch.allclose(neggrad_plus_loss(lr_, yr, lf, yf, 0.9), expected)


def test_neggrad_plus_raises_forget_loss_and_keeps_retain_loss_bounded(tiny_cell):
    """Against beta = 1 (the same steps without the ascent term, same seed and batches), the
    forget CE ends higher while the retain CE stays near where it started. (On a random
    split of an undertrained tiny model, retain descent alone also lowers the forget CE,
    hence the comparison rather than a before/after.)"""
    after = {}
    for beta in (1.0, 0.5):
        cell = tiny_cell("NegGrad+", params={"epochs": 1, "beta": beta, "lr": 0.05, "batch_size": 512})
        ctx = cell.ctx
        retain_before = eval_ce(cell, ctx.retain)
        cell.params.run(ctx)
        after[beta] = eval_ce(cell, ctx.forget), eval_ce(cell, ctx.retain)
        # every step pairs a retain batch with a forget batch (all of this tiny D_f, smaller than a batch)
        n_retain, n_forget = sizes(cell)
        assert n_forget < cell.params.forget_batch_size
        steps = ctx.steps_per_epoch(ctx.retain, 512)
        assert cell.counter.counts.backward == n_retain + steps * n_forget
    (forget_ng, retain_ng), (forget_ft, retain_ft) = after[0.5], after[1.0]
    assert forget_ng > 1.05 * forget_ft
    assert forget_ng - forget_ft > retain_ng - retain_ft  # the ascent targets D_f more than D_r
    assert retain_ng < retain_before + 0.1 and retain_ng < math.log(10)


# ---------------------------------------------------------------------- l1-sparse

def test_l1_penalty_weight_follows_its_linear_schedule():
    per_epoch = L1Sparse(epochs=4, gamma=0.1, no_l1_epochs=1).penalty_weights(steps_per_epoch=3)
    expected = [0.1] * 3 + [0.1 * 2 / 3] * 3 + [0.1 / 3] * 3 + [0.0] * 3
    assert per_epoch == pytest.approx(expected)
    per_step = L1Sparse(epochs=2, gamma=0.1, decay_per="step").penalty_weights(steps_per_epoch=2)
    assert per_step == pytest.approx([0.1, 0.075, 0.05, 0.025])


def test_l1_penalty_shrinks_the_weights(tiny_cell):
    norms = {}
    for gamma in (0.0, 0.05):
        cell = tiny_cell("l1-sparse", params={"epochs": 1, "gamma": gamma, "batch_size": 512})
        cell.params.run(cell.ctx)
        norms[gamma] = l1_norm(cell.model).item()
        assert cell.ctx.info["l1_gamma_at_epoch_start"] == [gamma]
    assert norms[0.05] < norms[0.0]


# ---------------------------------------------------------------------- GA

def test_ga_step_increases_forget_loss_and_never_sees_the_retain_set(tiny_cell):
    """One GA step (this tiny D_f is one batch), measured on that very batch in train mode
    (batch statistics, so BatchNorm's running averages cannot mask the change)."""
    params = {"epochs": 1, "lr": 0.01}
    cell, twin = tiny_cell("GA", params=params), tiny_cell("GA", params=params)
    _, n_forget = sizes(cell)
    assert n_forget <= cell.params.batch_size
    batch = next(twin.ctx.batches(twin.ctx.forget, cell.params.batch_size))  # the batch `cell` will draw
    cell.params.run(cell.ctx)
    assert cell.counter.counts.forward == n_forget == cell.counter.counts.backward
    with torch.no_grad():
        before = F.cross_entropy(twin.model(batch.x), batch.y).item()
        after = F.cross_entropy(cell.model(batch.x), batch.y).item()
    assert after > before


# ---------------------------------------------------------------------- SCRUB

def test_distill_kl_is_tempered_kl_times_t_squared():
    gen = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 5, generator=gen), torch.randn(8, 5, generator=gen)
    p_t, p_s = torch.softmax(t / 4, 1), torch.softmax(s / 4, 1)
    manual = (p_t * (p_t.log() - p_s.log())).sum(1).mean() * 16
    assert torch.allclose(distill_kl(s, t, 4.0), manual, atol=1e-6)
    assert distill_kl(t, t, 4.0).abs().item() < 1e-6


def test_scrub_teacher_is_frozen_and_its_passes_are_counted(tiny_cell):
    epochs, msteps = 2, 1
    cell = tiny_cell("SCRUB", params={"epochs": epochs, "msteps": msteps, "lr": 0.05, "batch_size": 512})
    ctx = cell.ctx
    teacher = ctx.original
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = snapshot(cell.model)
    cell.params.run(ctx)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(teacher_before[k], v) for k, v in teacher.state_dict().items())  # BN buffers too
    assert any(not torch.equal(p, b) for p, b in zip(cell.model.parameters(), student_before))
    n_retain, n_forget = sizes(cell)
    trained = epochs * n_retain + msteps * n_forget  # max-steps only in the first msteps epochs
    assert cell.counter.counts.backward == trained
    assert cell.counter.counts.forward == 2 * trained  # student + teacher
