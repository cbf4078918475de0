"""Shared by the image-text methods (AC-IT, HAC, FT-IT): their optimiser and schedule, and
one unlearning step's batch, and the forget images' concept prompts.

Every image-text method fine-tunes with AdamW and a cosine schedule to 0 over its epochs on
D_r (the fields: `bench.adamw_fields`).

Each step pairs a retain batch with its captions and, when asked, a batch of forget images
paired with captions of other (retained) classes, and trains with the model's own loss
(CLIP: InfoNCE; MERU: -d logits plus the entailment loss) on all pairs at once, with
multi-positive targets for duplicate captions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from bench.tasks.imagetext.context import ImageTextContext


def adamw_cosine(ctx: ImageTextContext, params) -> tuple[torch.optim.Optimizer, Any]:
    """AdamW on the trainable parameters, cosine to 0 over `params.epochs` passes over D_r in
    batches of `params.batch_size` (freeze the geometry first where the method does)."""
    opt = ctx.adamw(params.lr, params.weight_decay)
    return opt, ctx.warmup_cosine(opt, params.epochs * ctx.steps_per_epoch(ctx.retain, params.batch_size))


@dataclass
class StepBatch:
    loss: torch.Tensor  # the model's own loss on retain pairs (+ relabelled forget pairs)
    forget_images: torch.Tensor | None  # embeddings of the forget images (float32)
    forget_labels: torch.Tensor | None  # their (forgotten) classes
    forget_x: torch.Tensor | None  # their network input, for the Original's embeddings


def contrastive_step(ctx: ImageTextContext, retain_batch, forget_batch_size: int,
                     forget_captions: str = "templates") -> StepBatch:
    """`forget_captions` "templates": a relabelled forget image gets one of its new class's
    templates; "any": a generic caption too, with the task's `generic_fraction`."""
    tokens, ids = ctx.captions(retain_batch.y)
    x = retain_batch.x
    forget = None
    if forget_batch_size > 0 and len(ctx.forget):
        forget = ctx.sample(ctx.forget, forget_batch_size)
        f_tokens, f_ids = ctx.captions(ctx.other_retained(forget.y), generic=forget_captions == "any")
        x = torch.cat([x, forget.x])
        tokens, ids = torch.cat([tokens, f_tokens]), torch.cat([ids, f_ids])
    images = ctx.encode_image(x)
    texts = ctx.encode_text(tokens)
    loss = ctx.model.loss(images, texts, ids)
    if forget is None:
        return StepBatch(loss, None, None, None)
    n = len(retain_batch)
    return StepBatch(loss, images[n:], forget.y, forget.x)


def concepts_of(ctx: ImageTextContext, labels: torch.Tensor, concept_text: str) -> torch.Tensor:
    """Each forget image's concept prompt embedding; "fixed": without gradient (the forget
    terms then move the images only), "trained": the text tower learns from them too."""
    with torch.set_grad_enabled(torch.is_grad_enabled() and concept_text != "fixed"):
        return ctx.concept_embeddings()[ctx.concept_of(labels)]
