"""HAC: Hyperbolic Alignment Calibration for MERU (Pujol Vidal et al.)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.hparams import hp, log
from bench import adamw_fields as adamw
from bench.method import register_method
from bench.tasks.imagetext import lorentz
from methods import _imagetext as it


@register_method("HAC", scenarios=("class",), tasks=("imagetext",), smoke={"epochs": 1})
@dataclass(frozen=True)
class HyperbolicAlignmentCalibration:
    """Hyperbolic Alignment Calibration (MERU only): AC's pairs plus distance, cone-exit and norm terms.

    MERU's loss on retain pairs + relabelled forget pairs, plus three hyperbolic terms on the
    forget images x (concept prompt t, curvature c frozen with the logit scale):

    distance: hinge max(0, margin - d(x, t)) (`dist_form` "hinge"), or -d(x, t) ("negative",
              the paper's "negative hyperbolic distance", unbounded);
    entailment: max(0, aperture(t) + ent_margin - angle_t(x)): pushes x out of t's cone;
    norm: (||x|| - ||x_orig||)^2, x_orig the frozen Original's embedding of the same image
          (`norm_of` "space": norm of the space components; "distance": distance to the origin).
    Unpublished weights and forms are options (docs/imagetext.md).
    """

    models = ("meru",)

    epochs: int = adamw.epochs()
    lr: float = adamw.lr()
    weight_decay: float = adamw.weight_decay()
    batch_size: int = adamw.batch_size()
    forget_batch_size: int = hp(64, low=1, doc="forget images (relabelled) per step")
    forget_captions: str = adamw.forget_captions()
    concept_text: str = adamw.concept_text()
    dist_weight: float = hp(1.0, low=0.0, search=log(0.1, 10.0), doc="weight of the distance term")
    dist_form: str = hp("hinge", choices=("hinge", "negative"), doc="max(0, margin - d) or -d")
    dist_margin: float = hp(2.0, low=0.0, doc="hinge margin on d(forget image, concept text)")
    ent_weight: float = hp(1.0, low=0.0, search=log(0.1, 10.0), doc="weight of the cone-exit term")
    ent_margin: float = hp(0.0, low=0.0, doc="extra angle (radians) beyond the aperture")
    norm_weight: float = hp(0.1, low=0.0, search=log(0.01, 1.0), doc="weight of the norm regulariser")
    norm_of: str = hp("space", choices=("space", "distance"), doc="||x|| of the space components, or d(0, x)")

    def run(self, ctx) -> None:
        ctx.freeze_geometry()  # the paper: curvature and scale stay fixed while unlearning
        original = ctx.original
        c = ctx.model.curvature().detach()
        opt, sched = it.adamw_cosine(ctx, self)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                step = it.contrastive_step(ctx, batch, self.forget_batch_size, self.forget_captions)
                x = step.forget_images
                concept = it.concepts_of(ctx, step.forget_labels, self.concept_text)
                with torch.no_grad():
                    x_orig = ctx.encode_image(step.forget_x, original)
                terms = hac_terms(x, concept, x_orig, c, self)
                loss = step.loss + (self.dist_weight * terms["dist"] + self.ent_weight * terms["entail"]
                                    + self.norm_weight * terms["norm"])
                ctx.step(opt, loss, sched)


def hac_terms(x: torch.Tensor, concept: torch.Tensor, x_orig: torch.Tensor, c, opts) -> dict[str, torch.Tensor]:
    """HAC's three terms (each a mean over the forget images), unweighted."""
    d = lorentz.dist(x, concept, c)
    dist = torch.relu(opts.dist_margin - d).mean() if opts.dist_form == "hinge" else -d.mean()
    inside = lorentz.half_aperture(concept, c) + opts.ent_margin - lorentz.exterior_angle(concept, x, c)
    entail = torch.relu(inside).mean()
    norm = _radius(x, c, opts.norm_of) - _radius(x_orig, c, opts.norm_of)
    return {"dist": dist, "entail": entail, "norm": (norm * norm).mean()}


def _radius(x: torch.Tensor, c, norm_of: str) -> torch.Tensor:
    r = x.float().norm(dim=-1)
    return r if norm_of == "space" else torch.asinh(torch.sqrt(c) * r) / torch.sqrt(c)
