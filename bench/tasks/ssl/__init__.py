"""The `ssl` task: unlearning in self-supervised encoders (Wang & Chen's main setting).

Members: `members` random training images (seeded); non-members: `nonmembers` test images;
the scenario's fraction of the members is forgotten (random20 = 2,000 of 10,000). A model
name is `<framework>-<backbone>`: simclr-resnet18, moco-resnet18, byol-resnet18 (any
backbone of bench.models). Original = the encoder trained on every member, Retrain = trained
on the retain members, both with the recipe below (Adam, no weight decay). Metrics: EncoderMI
(threshold variant), linear-probe and weighted-kNN accuracy, the paper's TOP1 / LOSS / COSSIM,
and the classifier task's SVC MIA on the probe's confidence.

This module only declares (no torch): the runner is bench.tasks.ssl.cell.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.hparams import hp
from bench.tasks import TaskInfo, register_task

SSL = "ssl"
FRAMEWORKS = ("simclr", "moco", "byol")
BACKBONES = ("resnet18", "small_cnn")
MODEL_NAMES = tuple(f"{f}-{b}" for f in FRAMEWORKS for b in BACKBONES)
# Avg-Gap to Retrain averages over utility (probe, kNN) and privacy (EncoderMI, SVC MIA)
GAP_METRICS = ("probe_acc", "knn_acc", "encodermi_acc", "svc_mia")


@dataclass(frozen=True)
class SSLTaskParams:
    """The profile's [task_params] for the ssl task. [choice] marks settings the paper does not publish."""

    members: int = hp(10_000, low=2, doc="members: random training images (seeded by the cell's seed)")
    nonmembers: int = hp(10_000, low=1, doc="non-members: the first N test images (the audit's non-members, D_t)")
    nonmember_pool: int = hp(10_000, low=0,
                             doc="GP full form: training images outside the members, disjoint from every audited set")
    # Original / Retrain recipe (their text: Adam lr 0.01, 1,600 epochs)
    epochs: int = hp(1600, low=1, doc="training epochs of Original and Retrain (1,600 in the paper)")
    batch_size: int = hp(512, low=2, doc="[choice] training batch size")
    lr: float = hp(0.01, low=0.0, doc="Adam learning rate (their text), constant")
    weight_decay: float = hp(0.0, low=0.0, doc="Adam weight decay (none in their text)")
    crop_scale: float = hp(0.2, low=0.01, high=1.0, doc="[choice] training views: RandomResizedCrop scale (x, 1); 0.08 or 0.2 (the AC code trains with 0.1)")
    proj_hidden: int = hp(2048, low=1, doc="[choice] projection (and BYOL predictor) hidden width")
    proj_dim: int = hp(128, low=1, doc="[choice] projection output width")
    simclr_temperature: float = hp(0.5, low=1e-4, doc="[choice] NT-Xent temperature")
    moco_temperature: float = hp(0.2, low=1e-4, doc="[choice] MoCo v2 InfoNCE temperature")
    moco_momentum: float = hp(0.99, low=0.0, high=1.0, doc="[choice] MoCo key-encoder momentum")
    moco_queue: int = hp(4096, low=1, doc="[choice] MoCo queue length")
    byol_momentum: float = hp(0.99, low=0.0, high=1.0, doc="[choice] BYOL target EMA")
    # audits
    mia_views: int = hp(10, low=2, doc="EncoderMI: augmented views per image (45 pairwise cosines for 10)")
    mia_crop_scale: float = hp(0.1, low=0.01, high=1.0, doc="EncoderMI views: RandomResizedCrop scale (x, 1)")
    mia_grid: int = hp(501, low=2, doc="EncoderMI: thresholds tried, evenly spaced in [0, 1] (501: the AC code's grid)")
    knn_k: int = hp(200, low=1, doc="weighted kNN: neighbours")
    knn_temperature: float = hp(0.1, low=1e-4, doc="weighted kNN: temperature of exp(cos / T)")
    probe_epochs: int = hp(100, low=1, doc="linear probe: epochs (SGD on frozen features)")
    probe_lr: float = hp(0.1, low=0.0, doc="[choice] linear probe: SGD lr, cosine to 0, momentum 0.9")
    probe_batch_size: int = hp(256, low=1, doc="linear probe: batch size")


register_task(TaskInfo(
    name=SSL,
    summary="self-supervised encoders (SimCLR, MoCo v2, BYOL): EncoderMI, linear probe, kNN against Retrain",
    gap_metrics=GAP_METRICS,
    runner="bench.tasks.ssl.cell:run_ssl_cell",
    params_cls=SSLTaskParams,
    model_names=MODEL_NAMES,
))
