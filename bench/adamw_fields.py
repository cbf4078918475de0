"""The AdamW fine-tuning hyperparameters the image-text methods share (AC-IT, HAC, FT-IT),
and the calibration methods' (AC-IT, HAC) choices of what their forget terms see,
declared once with their bounds, search ranges and descriptions, as `bench.sgd_fields` does
for the classifier methods' SGD fields:

    from bench import adamw_fields as adamw

    epochs: int = adamw.epochs()
    lr: float = adamw.lr()

Torch-free: `bench.method_index` evaluates these calls when it reads a method file.
"""

from __future__ import annotations

from typing import Any

from bench.hparams import hp, log

LR_SEARCH = log(1e-5, 1e-3)


def epochs(default: int = 5) -> Any:
    return hp(default, low=1, doc="passes over D_r")


def lr(default: float = 1e-4) -> Any:
    return hp(default, low=0.0, search=LR_SEARCH, main=True, doc="AdamW peak lr (cosine to 0)")


def weight_decay(default: float = 0.1) -> Any:
    return hp(default, low=0.0)


def batch_size(default: int = 256, doc: str = "retain pairs per step") -> Any:
    return hp(default, low=2, doc=doc)


def freeze_geometry(default: bool = True) -> Any:
    return hp(default, doc="keep logit scale (and curvature) at the Original's")


def forget_captions(default: str = "templates") -> Any:
    return hp(default, choices=("templates", "any"),
              doc="captions for relabelled forget images: the other class's templates, or generic ones too "
                  "(\"a photo of an animal.\" can describe the forgotten class)")


def concept_text(default: str = "trained") -> Any:
    return hp(default, choices=("trained", "fixed"),
              doc="the forget terms' concept prompts: trained through (the text tower moves too), or fixed (no gradient)")
