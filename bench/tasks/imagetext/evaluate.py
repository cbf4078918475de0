"""Zero-shot classification with class prompts, its accuracies and confusion matrices.

A class's text embedding is the mean over a template set (seen: the training templates;
held-out: templates never trained on) of its captions' embeddings (models.encode_prompts);
an image is assigned the class with the largest logit (CLIP: cosine; MERU: smallest
hyperbolic distance). Accuracies in percent over the 10 classes.
"""

from __future__ import annotations

import torch

from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.tasks.imagetext.captions import CaptionBank
from bench.tasks.imagetext.models import ImageTextModel

TEMPLATE_SETS = ("seen", "heldout")


@torch.no_grad()
def class_embeddings(model: ImageTextModel, bank: CaptionBank, templates: str) -> torch.Tensor:
    tokens = bank.train_tokens if templates == "seen" else bank.heldout_tokens
    return model.encode_prompts(tokens)


@torch.no_grad()
def image_embeddings(engine: Engine, model: ImageTextModel, data: DeviceData, batch_size: int = 1024) -> torch.Tensor:
    """Every image's embedding, float32 (the class prompts' are too: they run outside autocast)."""
    out = []
    for start in range(0, len(data), batch_size):
        pos = torch.arange(start, min(start + batch_size, len(data)), device=engine.device)
        with engine.full_precision():
            out.append(model.encode_image(engine.batch_at(data, pos, None, augment=False).x).float())
    return torch.cat(out) if out else torch.zeros(0, 1, device=engine.device)


@torch.no_grad()
def predictions(engine: Engine, model: ImageTextModel, data: DeviceData, bank: CaptionBank,
                batch_size: int = 1024) -> dict[str, torch.Tensor]:
    """Zero-shot predicted class per image, for each template set (eval mode, float32: no bf16
    autocast or TF32 even where training uses them, so near-ties do not depend on rounding)."""
    was_training = model.training
    model.eval()
    try:
        with engine.full_precision():
            images = image_embeddings(engine, model, data, batch_size)
            return {name: model.logits(images, class_embeddings(model, bank, name)).argmax(1) for name in TEMPLATE_SETS}
    finally:
        model.train(was_training)


def accuracy(pred: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> float:
    if not bool(mask.any()):
        return float("nan")
    return 100.0 * (pred[mask] == labels[mask]).float().mean().item()


def confusion(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> list[list[float]]:
    """Row-normalised confusion matrix in percent: row = true class, column = predicted."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.float64)
    counts.index_put_((labels.cpu(), pred.cpu()), torch.ones(len(labels), dtype=torch.float64), accumulate=True)
    rows = counts.sum(1, keepdim=True).clamp(min=1)
    return (100.0 * counts / rows).tolist()


def row_distance(a: list[list[float]], b: list[list[float]], rows: tuple[int, ...]) -> float:
    """Mean over `rows` of the total-variation distance (percent) between two confusion rows."""
    ta, tb = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    return float(torch.stack([0.5 * (ta[r] - tb[r]).abs().sum() for r in rows]).mean())


def evaluate(engine: Engine, model: ImageTextModel, bank: CaptionBank, test: DeviceData, forget_train: DeviceData,
             forgotten: tuple[int, ...], batch_size: int) -> tuple[dict[str, float], dict[str, list]]:
    """(metrics, confusion matrices on the test set per template set)."""
    num_classes = len(bank.classes)
    test_pred = predictions(engine, model, test, bank, batch_size)
    is_forgotten = torch.isin(test.labels, torch.tensor(forgotten, device=test.labels.device))
    metrics: dict[str, float] = {}
    for name in TEMPLATE_SETS:
        metrics[f"zs_forget_{name}"] = accuracy(test_pred[name], test.labels, is_forgotten)
        metrics[f"zs_retain_{name}"] = accuracy(test_pred[name], test.labels, ~is_forgotten)
    train_pred = predictions(engine, model, forget_train, bank, batch_size)["seen"]
    metrics["zs_forget_train_seen"] = accuracy(train_pred, forget_train.labels,
                                               torch.ones_like(forget_train.labels, dtype=torch.bool))
    matrices = {name: confusion(test_pred[name], test.labels, num_classes) for name in TEMPLATE_SETS}
    return metrics, matrices
