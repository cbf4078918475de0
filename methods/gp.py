"""GP: gradient-penalty unlearning (Wang & Chen, arXiv 2405.07317)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.hparams import hp
from bench.method import UnlearnContext, register_method
from bench.tasks import CLASSIFY
from bench.tasks.ssl import SSL

FORMS = ("simplified", "full")
INTERP_PENALTIES = ("wgan", "squared_norm")
PENALTY_BATCHNORM = ("frozen", "batch")


def gradient_penalty(grad: torch.Tensor, target: float | None = 1.0) -> torch.Tensor:
    """`mean_i (||g_i||_2 - target)^2` over per-sample flattened gradients; `mean_i ||g_i||^2` if target is None."""
    norms = grad.flatten(1).float().norm(dim=1)
    return (norms**2).mean() if target is None else ((norms - target) ** 2).mean()


def output_gradient_penalty(ctx: UnlearnContext, x: torch.Tensor, target: float | None = 1.0,
                            logits_in_loss: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits, penalty on `grad_x sum_k f(x)_k`), differentiable twice (the double backward
    is counted; say whether the loss will also use the logits, see `ctx.input_gradient`)."""
    x = x.detach().requires_grad_(True)
    logits = ctx.logits(x)
    grad = ctx.input_gradient(logits.sum(), x, output_in_loss=logits_in_loss)
    return logits, gradient_penalty(grad, target)


@contextlib.contextmanager
def batchnorm_mode(model: torch.nn.Module, mode: str):
    """"frozen": BatchNorm uses its running statistics (eval mode), so each sample's output depends
    on that sample alone and grad_x sum_batch D(x) is exactly the per-sample gradient; "batch":
    as the model is (train mode), where the batch statistics couple the samples."""
    if mode == "batch":
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def encoder_output_penalty(ctx: UnlearnContext, x: torch.Tensor, target: float | None, mode: str) -> torch.Tensor:
    """The penalty on `grad_x sum_k D(x)_k` per sample for an encoder D (its features), twice
    differentiable; the double backward is counted (the loss never uses this pass's output)."""
    x = x.detach().requires_grad_(True)
    with batchnorm_mode(ctx.model, mode):
        out = ctx.logits(x)
    grad = ctx.input_gradient(out.sum(), x, output_in_loss=False)
    return gradient_penalty(grad, target)


@register_method("GP", tasks=(CLASSIFY, SSL))
@dataclass(frozen=True)
class GradientPenalty:
    """Gradient-penalty unlearning: CE on D_f plus a penalty on the input-gradient norm (double backward).

    simplified (their Eq. 3, default): `alpha * CE(D_f) + beta * mean_i (||grad_x
    sum_k f(x_i)_k||_2 - 1)^2` on forget batches. full (their Eq. 2): `alpha *
    CE(D_f) + beta * L_GP + gamma * mean_i ||f(x_i)||_2`, where L_GP is the penalty
    on interpolates `eps * x_member + (1 - eps) * x_nonmember`, eps ~ U(0, 1) per
    sample, [choice] non-members drawn at random from the test set (a held-out set
    of the training distribution, as the paper asks). The interpolate penalty is
    their Eq. 1 `(||g|| - 1)^2` (`interp_penalty=wgan`); their Algorithm 1
    returns `||g||^2` instead (`squared_norm`). alpha, beta, gamma are not
    published: [choice] alpha 1, beta 1 (sweep {0.1, 1, 10}), gamma 1; about 10
    epochs (their setting). The optimiser is not given for supervised
    unlearning: SGD momentum 0.9, weight decay 5e-4, lr 0.01 cosine to 1e-4.
    Cost: every penalty sample is one forward, two backward passes and the
    measured extra of the double backward (`ctx.input_gradient`); the full form
    adds one trained pass (6F) per member sample.
    Class-wise forgetting: L_MEMtrain is CE on D_f, which is then a single class, so
    the loss pulls every prediction toward the forgotten class (seen on CIFAR-10 with
    the small CNN: RA and TA fell to 0). That is the paper's formula (it evaluates
    random subsets only); lower `alpha` to weaken it.
    """

    form: str = hp("simplified", choices=FORMS, doc="simplified: Eq. 3 on D_f; full: Eq. 2 with interpolates")
    epochs: int = hp(10, low=1, doc="passes over D_f")
    alpha: float = hp(1.0, low=0.0, doc="weight of CE on the forget batch (L_MEMtrain)")
    beta: float = hp(1.0, low=0.0, doc="weight of the gradient penalty (sweep {0.1, 1, 10})")
    gamma: float = hp(1.0, low=0.0, doc="full form: weight of the mean output norm on members")
    interp_penalty: str = hp("wgan", choices=INTERP_PENALTIES,
                             doc="full form: wgan (||g||-1)^2 (Eq. 1) or squared_norm ||g||^2 (Alg. 1)")
    lr: float = hp(0.01, low=0.0, doc="initial learning rate (cosine decay to final_lr)")
    final_lr: float = hp(1e-4, low=0.0)
    momentum: float = hp(0.9, low=0.0, high=0.999)
    weight_decay: float = hp(5e-4, low=0.0)
    batch_size: int = hp(256, low=1, doc="forget samples per batch")
    penalty_batchnorm: str = hp("frozen", choices=PENALTY_BATCHNORM,
                                doc="ssl task: per-sample penalty with BatchNorm on running stats (frozen), "
                                    "or the batch-coupled train-mode gradient (batch)")

    def run(self, ctx: UnlearnContext) -> None:
        if ctx.task == SSL:
            return self.run_encoder(ctx)
        opt = ctx.sgd(ctx.model.parameters(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = ctx.cosine(opt, self.epochs * ctx.steps_per_epoch(ctx.forget, self.batch_size), self.final_lr)
        loss_fn = self.simplified_loss if self.form == "simplified" else self.full_loss
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.forget, self.batch_size):
                ctx.step(opt, loss_fn(ctx, batch.x, batch.y), sched)
        ctx.note(form=self.form, **({"non_members": "test set, random draws"} if self.form == "full" else {}))

    def simplified_loss(self, ctx: UnlearnContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        logits, penalty = output_gradient_penalty(ctx, x)
        return self.alpha * F.cross_entropy(logits, y) + self.beta * penalty

    def full_loss(self, ctx: UnlearnContext, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if len(ctx.test) < n:
            raise ValueError(f"GP full form: the test set ({len(ctx.test)}) is smaller than a forget batch ({n})")
        logits = ctx.logits(x)
        non_members = ctx.sample(ctx.test, n).x
        eps = torch.rand((n,) + (1,) * (x.dim() - 1), device=x.device, generator=ctx.generator)
        interpolates = eps * x + (1 - eps) * non_members
        target = 1.0 if self.interp_penalty == "wgan" else None
        _, penalty = output_gradient_penalty(ctx, interpolates, target, logits_in_loss=False)
        norm = logits.norm(dim=1).mean()
        return self.alpha * F.cross_entropy(logits, y) + self.beta * penalty + self.gamma * norm

    # ------------------------------------------------------------------ self-supervised encoders

    def run_encoder(self, ctx) -> None:
        """The ssl task: D = the encoder's backbone features, L_MEMtrain = the framework's own loss
        (NT-Xent / MoCo / BYOL) on two views of the forget batch; the penalty's input is a third
        training view [choice]. A term whose weight is 0 is not computed (their Tables IV and V
        ablations: alpha 0 drops MLoss, beta 0 drops (Mem)GP, gamma 0 drops MNorm). Same
        optimiser as the classifier path (SGD, cosine) [choice: not published]."""
        if self.alpha == 0 and self.beta == 0 and (self.form == "simplified" or self.gamma == 0):
            raise ValueError("GP: every term has weight 0 (alpha, beta and, for the full form, gamma); nothing to optimise")
        if self.form == "full" and self.beta > 0 and len(ctx.nonmember_pool) == 0:
            raise ValueError("GP full form needs non-members: the ssl task's nonmember_pool is 0")
        bs = min(self.batch_size, len(ctx.forget))
        opt = ctx.sgd(ctx.trainable(), lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)
        sched = ctx.cosine(opt, self.epochs * ctx.steps_per_epoch(ctx.forget, bs, drop_last=True), self.final_lr)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.forget, bs, augment=False, drop_last=True):
                ctx.step(opt, self.encoder_loss(ctx, batch.raw), sched)
        ctx.note(form=self.form, penalty_batchnorm=self.penalty_batchnorm,
                 **({"non_members": "nonmember_pool: training images outside the members"} if self.form == "full" else {}))

    def encoder_loss(self, ctx, raw: torch.Tensor) -> torch.Tensor:
        loss = ctx.ssl_loss(raw) * self.alpha if self.alpha else torch.zeros((), device=ctx.device)
        x = ctx.view(raw)
        if self.form == "simplified":
            if self.beta:
                loss = loss + self.beta * encoder_output_penalty(ctx, x, 1.0, self.penalty_batchnorm)
            return loss
        if self.beta:
            n = x.shape[0]
            if len(ctx.nonmember_pool) < n:
                raise ValueError(f"GP full form: the non-member pool ({len(ctx.nonmember_pool)}) is smaller than a batch ({n})")
            non_members = ctx.view(ctx.sample(ctx.nonmember_pool, n, augment=False).raw)
            eps = torch.rand((n, 1, 1, 1), device=x.device, generator=ctx.generator)
            target = 1.0 if self.interp_penalty == "wgan" else None
            loss = loss + self.beta * encoder_output_penalty(ctx, eps * x + (1 - eps) * non_members, target,
                                                             self.penalty_batchnorm)
        if self.gamma:
            with batchnorm_mode(ctx.model, self.penalty_batchnorm):
                norm = ctx.logits(x).norm(dim=1).mean()
            loss = loss + self.gamma * norm
        return loss
