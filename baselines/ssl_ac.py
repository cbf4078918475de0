"""AC-SSL: Alignment Calibration (Wang, Lu, Zhang, Boenisch, Dziedzic, Yu, Gao 2024) on an encoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.data.device_data import DeviceData
from bench.hparams import choice, hp, int_range, log
from bench.method import register_method
from bench.tasks.ssl import SSL


def calibrated_mean(per_sample: torch.Tensor, forget_rows: torch.Tensor, alpha: float) -> torch.Tensor:
    """(sum of the retain rows' losses + alpha * sum of the forget rows') / (n_r + alpha * n_u).

    `per_sample` holds k losses per image (SimCLR's NT-Xent: both directions, the N rows of view 1
    then the N of view 2; MoCo and BYOL: one), `forget_rows` (N,) marks the forget images.
    The mask follows that row order ([m, m]). The AC code builds it with numpy's `repeat(2)`
    ([m0, m0, m1, m1, ...]), which mismatches its own row order; we follow its intent, which
    changes SimCLR's loss where alpha != 1 (MoCo and BYOL have one row per image)."""
    mask = forget_rows.repeat(per_sample.shape[0] // forget_rows.shape[0]).to(per_sample.dtype)
    weights = 1.0 + (alpha - 1.0) * mask
    return (weights * per_sample.float()).sum() / weights.sum()


def positive_alignment(anchor: torch.Tensor, positive: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Mean cosine similarity of the rows of `anchor` and `positive` (two views of each image)
    over the rows marked in `rows` (the forget images); 0 when none is (no host sync)."""
    cos = F.cosine_similarity(anchor.float(), positive.float(), dim=1)
    mask = rows.to(cos.dtype)
    return (cos * mask).sum() / mask.sum().clamp(min=1.0)


def partner_positions(forget_pos: torch.Tensor, n_forget: int, index_shift: int,
                      generator: torch.Generator) -> torch.Tensor:
    """The forget image each forget anchor (position `forget_pos` in D_f) is paired with: uniform
    over D_f (index_shift 0, the repo's default; it may be the image itself, with probability
    1/|D_f|), else the image `index_shift` places further in D_f (wrapping)."""
    if index_shift > 0:
        return torch.remainder(forget_pos + index_shift, n_forget)
    return torch.randint(n_forget, forget_pos.shape, device=forget_pos.device, generator=generator)


@register_method("AC-SSL", tasks=(SSL,), smoke={"epochs": 2})
@dataclass(frozen=True)
class AlignmentCalibrationSSL:
    """Alignment Calibration: D_r keeps its loss, D_f is paired with other forget images, its positives pushed apart.

    Source: Wang et al., "Alignment Calibration: Machine Unlearning for Contrastive Learning under
    Auditing" (arXiv 2406.03603; TMLR 2025 as "MUC"). The paper's text was not reachable here
    (abstracts only); the objective below is read from its code, github EhanW/Alignment-Calibration
    (algs.py training_step, dataset.py's triad views, main.py's defaults), whose argparse help names
    the paper's weights: alpha (= gamma, "negative calibration") and beta ("positive calibration").

    One pass per epoch over D_r u D_f shuffled together (retain and forget images share batches,
    so each is the other's in-batch negative, as in the repo's ConcatDataset). For image i of a
    batch, a = t(x_i) is the anchor view and the partner view is b = t(x_i) for a retain image, but
    b = t(x_j), x_j a random forget image (another one but with chance 1/|D_f|), for a forget
    image (`index_shift`). With l_i the
    framework's own per-sample loss on the pair (a_i, b_i) (NT-Xent both directions / MoCo InfoNCE
    with the queue / BYOL's symmetric regression):

        L_cal = (sum_{i in B_r} l_i + alpha * sum_{i in B_u} l_i) / (n_r + alpha * n_u)
        L_pos = mean_{i in B_u} cos(h(a_i), g(c_i)),   c_i = t(x_i) a third view
        L     = L_cal + beta * |D_f| / (|D_r| + |D_f|) * L_pos

    L_cal on forget rows is the negative alignment calibration (a negative pair is aligned as if
    it were positive; alpha weights alignment and uniformity alike, alpha = gamma as in the code);
    L_pos, minimised, lowers the forget images' positive-pair alignment (what EncoderMI reads).
    The beta rescaling by the forget share is the repo's. Both terms live on the projection-head
    outputs, as in the repo: h = SimCLR's projection z / MoCo's query q, g = SimCLR's projection
    (with gradient, a third view of the whole batch as the repo's forward) / MoCo's key encoder
    (no gradient). [choice: BYOL, absent from the repo: h = the prediction p, g = the target's
    projection, the pair BYOL's loss aligns.] A batch with no forget image has L_pos = 0.

    Optimiser as main.py: SGD lr 0.06, momentum 0.9, weight decay 5e-4, 10 epochs, batch 512
    (drop_last), constant lr (its --enable-scheduler is off by default; `schedule` "cosine" is
    the option, [choice: stepped per batch, the repo's per epoch]). [choice: beta 1; the repo's argparse default 0 switches L_pos off and its README
    passes a swept ${BETA}; alpha 1 is main.py's default.] The encoders there were pretrained with
    that same SGD recipe; ours with Adam 0.01, so the lr is a search knob.
    """

    epochs: int = hp(10, low=1, search=int_range(1, 50, schedule=True), doc="passes over D_r u D_f (main.py: 10)")
    lr: float = hp(0.06, low=0.0, search=log(1e-3, 0.1), main=True, doc="SGD learning rate (main.py: 0.06)")
    schedule: str = hp("constant", choices=("constant", "cosine"),
                       doc="constant (main.py's default) or cosine to 0 (its --enable-scheduler)")
    momentum: float = hp(0.9, low=0.0, high=0.999, doc="SGD momentum (main.py: 0.9)")
    weight_decay: float = hp(5e-4, low=0.0, doc="SGD weight decay (main.py: 5e-4)")
    batch_size: int = hp(512, low=2, doc="images of D_r u D_f per batch (main.py: 512)")
    alpha: float = hp(1.0, low=0.0, search=choice(0.5, 1.0, 2.0, 5.0),
                      doc="weight of the forget rows in the calibrated loss (paper's alpha = gamma; main.py: 1)")
    beta: float = hp(1.0, low=0.0, search=log(0.1, 100.0),
                     doc="[choice] weight of the forget rows' positive alignment, times |D_f|/(|D_r|+|D_f|)")
    index_shift: int = hp(0, low=0, doc="forget partner: 0 a uniformly random forget image (repo default), "
                                        "k the image k places further in D_f")

    def run(self, ctx) -> None:
        retain, forget = ctx.retain, ctx.forget
        n_r, n_u = len(retain), len(forget)
        both = DeviceData(torch.cat([retain.images, forget.images]), torch.cat([retain.labels, forget.labels]),
                          torch.cat([retain.index, forget.index]), "retain+forget")
        bs = min(self.batch_size, len(both))
        beta_eff = self.beta * n_u / (n_r + n_u)
        opt = ctx.sgd(ctx.trainable(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = (ctx.cosine(opt, self.epochs * ctx.steps_per_epoch(both, bs, drop_last=True), 0.0)
                 if self.schedule == "cosine" else None)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(both, bs, augment=False, drop_last=True):
                ctx.step(opt, self.loss(ctx, batch.raw, batch.pos >= n_r, batch.pos - n_r, forget, beta_eff), sched)
        ctx.note(beta_effective=beta_eff, partner="random forget image" if self.index_shift == 0
                 else f"forget image +{self.index_shift}")

    def loss(self, ctx, raw: torch.Tensor, forget_rows: torch.Tensor, forget_pos: torch.Tensor,
             forget: DeviceData, beta_eff: float) -> torch.Tensor:
        """L on one batch of uint8 images `raw`; `forget_rows` marks D_f images, `forget_pos`
        their positions in D_f (ignored on retain rows). No host sync."""
        if len(forget):
            partners = partner_positions(forget_pos.clamp(min=0), len(forget), self.index_shift, ctx.generator)
            partner_raw = torch.where(forget_rows[:, None, None, None], forget.images[partners], raw)
        else:
            partner_raw = raw
        per_sample, anchor = ctx.objective.loss_and_anchor(ctx.model, ctx.view(raw), ctx.view(partner_raw),
                                                           reduction="none")
        loss = calibrated_mean(per_sample, forget_rows, self.alpha)
        if beta_eff > 0:
            positive = ctx.objective.positive_embedding(ctx.model, ctx.view(raw))
            loss = loss + beta_eff * positive_alignment(anchor, positive, forget_rows)
        return loss
