"""Per-example outputs of a cell's final model, stored beside its record for the audit.

Every finished cell keeps the logits of its model (eval mode, no augmentation) on all of
D_f (or a fixed sample of it: a profile's `[audit] forget_sample`) and on a fixed, seeded
sample of D_r and of D_t (the same sample for every cell of a
split and seed), with the labels and the samples' indices. They are written as one
compressed `records/<cell_id>.outputs.npz` (atomically, before the JSON record, whose
`outputs` field holds the file's name and SHA-256), so every per-example attack in
`bench.audit` can be recomputed from stored files without rerunning anything.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from bench import atomic
from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.errors import ConfigError

OUTPUT_SAMPLE = 500  # samples of D_r and of D_t whose logits are kept (all of D_f always)
SETS = ("forget", "retain", "test")
SUFFIX = ".outputs.npz"


@torch.no_grad()
def logits_of(engine: Engine, model: nn.Module, data: DeviceData, batch_size: int) -> np.ndarray:
    """Float32 logits (N, classes) in eval mode without augmentation, in `data`'s order."""
    was_training = model.training
    model.eval()
    chunks = []
    try:
        for start in range(0, len(data), batch_size):
            pos = torch.arange(start, min(start + batch_size, len(data)), device=engine.device)
            batch = engine.batch_at(data, pos, None, augment=False)
            with engine.autocast():
                chunks.append(model(batch.x).float())
    finally:
        model.train(was_training)
    if not chunks:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(chunks).cpu().numpy().astype(np.float32)


def fixed_sample(data: DeviceData, size: int, seed: int) -> DeviceData:
    """`size` samples of `data` drawn without replacement by a CPU generator (device-independent),
    kept in index order; all of it when smaller."""
    n = len(data)
    if size >= n:
        return data
    gen = torch.Generator().manual_seed(seed)
    positions = torch.randperm(n, generator=gen)[:size].sort().values
    return data.take(positions)


def collect_outputs(engine: Engine, model: nn.Module, sets: Any, sample: int, seed: int,
                    batch_size: int, forget_sample: int = 0) -> dict[str, np.ndarray]:
    """{<set>_logits, <set>_labels, <set>_index} for D_f (all, or a fixed sample of
    `forget_sample` where set: a grid of large forget sets without an audit) and samples of D_r and D_t."""
    chosen = {
        "forget": fixed_sample(sets.forget, forget_sample, seed + 2) if forget_sample else sets.forget,
        "retain": fixed_sample(sets.retain, sample, seed),
        "test": fixed_sample(sets.test, sample, seed + 1),
    }
    out: dict[str, np.ndarray] = {}
    for name, data in chosen.items():
        out[f"{name}_logits"] = logits_of(engine, model, data, batch_size)
        out[f"{name}_labels"] = data.labels.cpu().numpy().astype(np.int64)
        out[f"{name}_index"] = data.index.cpu().numpy().astype(np.int64)
    return out


def encode(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **{k: arrays[k] for k in sorted(arrays)})
    return buffer.getvalue()


def write_outputs(records_dir: Path, cell_id: str, arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Write the file atomically; return what the record keeps about it."""
    data = encode(arrays)
    name = f"{cell_id}{SUFFIX}"
    atomic.write_bytes(Path(records_dir) / name, data)
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
            "sizes": {s: int(len(arrays[f"{s}_labels"])) for s in SETS if f"{s}_labels" in arrays}}


def read_outputs(records_dir: Path, meta: dict[str, Any]) -> dict[str, np.ndarray]:
    """The stored arrays, after checking the file against the record's hash."""
    path = Path(records_dir) / meta["file"]
    if not path.is_file():
        raise ConfigError(f"{path} is missing; rerun its cell with `bench run --force` to store it again")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta["sha256"]:
        raise ConfigError(f"{path} does not match the hash in its record; rerun its cell with `bench run --force`")
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}
