"""Small CIFAR-10 python-batch files for the imagetext tests (the real format, tiny sizes)."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import numpy as np

from bench.data.catalog import load_dataset

PER_BATCH, N_TEST = 40, 60  # 200 training images (20 per class), 60 test images (6 per class)
SIZES = {"train": 5 * PER_BATCH, "test": N_TEST}


def class_images(labels: np.ndarray, seed: int) -> np.ndarray:
    """Images whose mean colour depends on the class (something to learn), plus noise."""
    rng = np.random.default_rng(seed)
    base = np.stack([(labels * 25) % 256, (labels * 70) % 256, (255 - labels * 25) % 256], 1).astype(np.int16)
    noise = rng.integers(-30, 31, (len(labels), 3, 32 * 32))
    return np.clip(base[:, :, None] + noise, 0, 255).astype(np.uint8).reshape(len(labels), 3072)


def write_cifar10(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        labels = np.arange(PER_BATCH) % 10
        (folder / f"data_batch_{i}").write_bytes(pickle.dumps({b"data": class_images(labels, i), b"labels": labels.tolist()}))
    labels = np.arange(N_TEST) % 10
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": class_images(labels, 99), b"labels": labels.tolist()}))
    return root


def small_loader():
    """load_dataset for the small files (they hold fewer images than the real CIFAR-10)."""
    return functools.partial(load_dataset, sizes=SIZES)
