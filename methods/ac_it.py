"""AC-IT: Alignment Calibration for an image-text model (the Euclidean terms; CLIP or MERU)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bench.hparams import hp, log
from bench import adamw_fields as adamw
from bench.method import register_method
from methods import _imagetext as it


@register_method("AC-IT", scenarios=("class",), tasks=("imagetext",), smoke={"epochs": 1})
@dataclass(frozen=True)
class AlignmentCalibrationImageText:
    """Alignment Calibration for a dual encoder: forget images re-captioned, cosine to the concept pushed down.

    The model's loss on retain pairs + forget images paired with other retained classes'
    captions, + a cosine term pulling forget images away from their concept's prompt.

    Our reading of AC for a dual encoder (docs/imagetext.md): the contrastive part keeps the
    retained alignment and re-aligns forget images to other classes; the cosine term is the
    Euclidean calibration: cos(image, concept text) of each forget image, averaged
    (`cos_form` "mean") or only its positive part ("hinge"). On MERU it is the "fair cross":
    the same terms on the hyperboloid's space components (cosine of those vectors), with
    MERU's own loss (-d logits + entailment) as the contrastive part.
    """

    epochs: int = adamw.epochs()
    lr: float = adamw.lr()
    weight_decay: float = adamw.weight_decay()
    batch_size: int = adamw.batch_size()
    forget_batch_size: int = hp(64, low=0, doc="forget images (relabelled) per step")
    forget_captions: str = adamw.forget_captions()
    concept_text: str = adamw.concept_text()
    cos_weight: float = hp(1.0, low=0.0, search=log(0.1, 10.0), doc="weight of the cosine term")
    cos_form: str = hp("mean", choices=("mean", "hinge"), doc="mean cosine, or mean of max(0, cosine)")
    freeze_geometry: bool = adamw.freeze_geometry()

    def run(self, ctx) -> None:
        if self.freeze_geometry:
            ctx.freeze_geometry()
        opt, sched = it.adamw_cosine(ctx, self)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                step = it.contrastive_step(ctx, batch, self.forget_batch_size, self.forget_captions)
                loss = step.loss
                if step.forget_images is not None and self.cos_weight > 0:
                    concept = it.concepts_of(ctx, step.forget_labels, self.concept_text)
                    cos = F.cosine_similarity(step.forget_images, concept, dim=-1)
                    loss = loss + self.cos_weight * (torch.relu(cos) if self.cos_form == "hinge" else cos).mean()
                ctx.step(opt, loss, sched)
