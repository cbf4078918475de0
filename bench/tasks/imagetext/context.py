"""What an image-text unlearning method sees: the dual encoder, the retain and forget
images, their captions, the forgotten concepts' prompts, and the harness's tools (batches,
steps, divergence watch, Retrain, a counted frozen Original)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bench.method import UnlearnContext
from bench.tasks.imagetext.captions import CaptionBank
from bench.tasks.imagetext.counting import TowerCounter
from bench.tasks.imagetext.models import ImageTextModel
from bench.tasks.imagetext.train import adamw, warmup_cosine


@dataclass
class RetrainCost:
    counts: dict[str, dict[str, int]]
    seconds: float
    device: str
    cached: bool
    peak_memory_mb: float | None = None


class ImageTextContext(UnlearnContext):
    """UnlearnContext's batches, steps, epochs and divergence watch, for a dual encoder.

    `model` is an ImageTextModel (`model.hyperbolic` tells CLIP from MERU). Images come from
    `retain` / `forget` (DeviceData with class labels); captions from `captions(labels)`.
    """

    def __init__(self, *, bank: CaptionBank, forgotten: tuple[int, ...], generic_fraction: float,
                 towers: TowerCounter, make_original: Callable[[], ImageTextModel],
                 retrain: Callable[[], tuple[dict, RetrainCost]], **kwargs):
        super().__init__(counter=towers.image, make_original=make_original, retrain=None, **kwargs)
        self.bank = bank
        self.forgotten = forgotten
        self.generic_fraction = generic_fraction
        self.towers = towers
        self._retrain_provider = retrain
        self.retrain_cost: RetrainCost | None = None
        keep = torch.ones(len(bank.classes), dtype=torch.bool)
        keep[list(forgotten)] = False
        self.retained_classes = torch.nonzero(keep).flatten().to(self.device)
        # class id -> row of concept_embeddings() (-1 for retained classes)
        self._concept_row = torch.full((len(bank.classes),), -1, dtype=torch.long, device=self.device)
        self._concept_row[list(forgotten)] = torch.arange(len(forgotten), device=self.device)

    @property
    def original(self) -> ImageTextModel:
        """A frozen copy of the Original model (eval mode); its passes are counted."""
        if self._original is None:
            teacher = self._make_original()
            teacher.eval()
            for p in teacher.parameters():
                p.requires_grad_(False)
            self.towers.attach(teacher)
            self._original = teacher
        return self._original

    # ---- captions

    def captions(self, labels: torch.Tensor, generic: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """A random training caption per label (tokens, caption ids), generic ones included
        (with the task's `generic_fraction`) unless `generic` is False."""
        return self.bank.sample(labels, self.generator, self.generic_fraction if generic else 0.0)

    def other_retained(self, labels: torch.Tensor) -> torch.Tensor:
        """For each label, a retained class drawn uniformly (never a forgotten one)."""
        pick = torch.randint(0, len(self.retained_classes), labels.shape, device=self.device, generator=self.generator)
        return self.retained_classes[pick]

    # ---- embeddings (under the engine's autocast, returned in float32)

    def encode_image(self, x: torch.Tensor, model: ImageTextModel | None = None) -> torch.Tensor:
        with self.autocast():
            return (model or self.model).encode_image(x).float()

    def encode_text(self, tokens: torch.Tensor, model: ImageTextModel | None = None) -> torch.Tensor:
        with self.autocast():
            return (model or self.model).encode_text(tokens).float()

    def concept_embeddings(self, model: ImageTextModel | None = None) -> torch.Tensor:
        """(len(forgotten), D): each forgotten concept's prompt embedding (training templates)."""
        with self.autocast():
            return (model or self.model).encode_prompts(self.bank.train_tokens[list(self.forgotten)]).float()

    def concept_of(self, labels: torch.Tensor) -> torch.Tensor:
        """Row of concept_embeddings() for each (forgotten) label."""
        return self._concept_row[labels]

    # ---- optimisation

    def freeze_geometry(self) -> None:
        """Keep the logit scale (and MERU's curvature) at their Original values."""
        for p in self.model.geometry_parameters():
            p.requires_grad_(False)

    def trainable(self) -> list[torch.nn.Parameter]:
        return [p for p in self.model.parameters() if p.requires_grad]

    def adamw(self, lr: float, weight_decay: float) -> torch.optim.AdamW:
        return adamw(self.model, lr, weight_decay)

    @staticmethod
    def warmup_cosine(opt: torch.optim.Optimizer, total_steps: int, warmup_steps: int = 0):
        return warmup_cosine(opt, total_steps, warmup_steps)

    # ---- the gold standard

    def retrain(self) -> None:
        """Replace the model by Retrain (trained without the forgotten concepts' images and
        captions, or loaded from the checkpoint cache); its training's cost and time are reported."""
        state, cost = self._retrain_provider()
        self.model.load_state_dict(state)
        self.retrain_cost = cost
