"""FT-IT: fine-tune an image-text model on the retain pairs only."""

from __future__ import annotations

from dataclasses import dataclass

from bench.hparams import hp, log
from bench.method import register_method
from methods._imagetext import contrastive_step


@register_method("FT-IT", scenarios=("class",), tasks=("imagetext",), smoke={"epochs": 1})
@dataclass(frozen=True)
class FineTuneImageText:
    """The model's own loss (CLIP: InfoNCE; MERU: -d logits + entailment) on D_r, AdamW, cosine lr."""

    epochs: int = hp(5, low=1, doc="passes over D_r")
    lr: float = hp(1e-4, low=0.0, search=log(1e-5, 1e-3), main=True, doc="AdamW peak lr (cosine to 0)")
    weight_decay: float = hp(0.1, low=0.0)
    batch_size: int = hp(256, low=2)
    freeze_geometry: bool = hp(True, doc="keep logit scale (and curvature) at the Original's")

    def run(self, ctx) -> None:
        if self.freeze_geometry:
            ctx.freeze_geometry()
        opt = ctx.adamw(self.lr, self.weight_decay)
        sched = ctx.warmup_cosine(opt, self.epochs * ctx.steps_per_epoch(ctx.retain, self.batch_size))
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                ctx.step(opt, contrastive_step(ctx, batch, 0).loss, sched)
