"""FT-IT: fine-tune an image-text model on the retain pairs only."""

from __future__ import annotations

from dataclasses import dataclass

from bench import adamw_fields as adamw
from bench.method import register_method
from methods import _imagetext as it


@register_method("FT-IT", scenarios=("class",), tasks=("imagetext",), smoke={"epochs": 1})
@dataclass(frozen=True)
class FineTuneImageText:
    """The model's own loss (CLIP: InfoNCE; MERU: -d logits + entailment) on D_r, AdamW, cosine lr."""

    epochs: int = adamw.epochs()
    lr: float = adamw.lr()
    weight_decay: float = adamw.weight_decay()
    batch_size: int = adamw.batch_size()
    freeze_geometry: bool = adamw.freeze_geometry()

    def run(self, ctx) -> None:
        if self.freeze_geometry:
            ctx.freeze_geometry()
        opt, sched = it.adamw_cosine(ctx, self)
        for _ in ctx.epochs(self.epochs):
            for batch in ctx.batches(ctx.retain, self.batch_size):
                ctx.step(opt, it.contrastive_step(ctx, batch, 0).loss, sched)
