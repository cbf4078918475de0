"""The `imagetext` task: concept unlearning in tiny CLIP and MERU dual encoders trained on
CIFAR-10 with templated captions (Pujol Vidal et al.: AC on CLIP vs HAC on MERU).

This module only declares (no torch at import): the task, its [task_params] and its models.
The cell runs in `bench.tasks.imagetext.cell`. See docs/imagetext.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.hparams import hp
from bench.tasks import TaskInfo, register_task

MODELS = ("clip", "meru")  # a cell's `model`: the embedding geometry; a profile without `model` runs both
GAP_METRICS = ("zs_forget_seen", "zs_forget_heldout", "zs_retain_seen", "zs_retain_heldout")


@dataclass(frozen=True)
class ImageTextParams:
    concepts: int = hp(1, choices=(1, 2, 4), doc="concepts forgotten: the scenario's class, then more_concepts in order")
    more_concepts: str = hp("automobile,bird,cat", doc="comma-separated CIFAR-10 class names forgotten after the scenario's")
    train_per_class: int = hp(0, low=0, doc="first N training images of each class (0: all 5,000)")
    test_per_class: int = hp(0, low=0, doc="first N test images of each class (0: all 1,000)")
    image_width: int = hp(64, low=4, doc="ResNet-18 base width (64: the standard network)")
    text_width: int = hp(256, low=8, doc="text transformer width")
    text_layers: int = hp(4, low=1, doc="text transformer depth")
    text_heads: int = hp(4, low=1, doc="attention heads (must divide text_width)")
    embed_dim: int = hp(128, low=2, doc="embedding dimension of both towers")
    generic_fraction: float = hp(0.2, low=0.0, high=1.0, doc="share of training captions replaced by a generic one "
                                                             "(animal / vehicle / pet)")
    entail_weight: float = hp(0.2, low=0.0, doc="MERU's entailment loss weight")
    warmup_fraction: float = hp(0.05, low=0.0, high=0.5, doc="linear lr warm-up, as a fraction of Original/Retrain steps")


register_task(TaskInfo(
    name="imagetext",
    summary="tiny CLIP / MERU on CIFAR-10 captions: forget a concept; zero-shot accuracy (seen/held-out templates), "
            "confusion against Retrain",
    gap_metrics=GAP_METRICS,
    runner="bench.tasks.imagetext.cell:run_imagetext_cell",
    params_cls=ImageTextParams,
    models=MODELS,
    summary_writer="bench.tasks.imagetext.report:write_summary",
))
