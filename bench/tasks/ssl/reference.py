"""Original and Retrain encoders: trained once, cached as checkpoints, kept in memory per process.

The checkpoint key holds everything that determines the encoder: the data's content, the model
name, the training recipe (the task's training settings), the exact training-set indices, the
seed and the precision. Original trains on every member, Retrain on the retain members.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping

import torch

from bench.checkpoints import CheckpointStore, key_hash
from bench.data.catalog import ImageData
from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.flops import SampleCounter
from bench.progress import SILENT, Progress
from bench.splits import derive_seed, index_hash
from bench.tasks.ssl.models import SSLModel, build_ssl_model
from bench.tasks.ssl.objective import Objective, train_ssl

ENCODER_VERSION = 1  # bump when the training semantics change: old checkpoints then no longer match
RECIPE_KEYS = ("epochs", "batch_size", "lr", "weight_decay", "crop_scale", "proj_hidden", "proj_dim",
               "simclr_temperature", "moco_temperature", "moco_momentum", "moco_queue", "byol_momentum")
_MEMORY_SLOTS = 6
_memory: "OrderedDict[str, tuple[dict, dict]]" = OrderedDict()


class EncoderReferences:
    def __init__(self, engine: Engine, data: ImageData, model_name: str, tp: Mapping[str, Any], objective: Objective,
                 store: CheckpointStore, progress: Progress = SILENT):
        self.engine, self.data, self.model_name, self.tp = engine, data, model_name, tp
        self.objective, self.store, self.progress = objective, store, progress

    def new_model(self, seed: int = 0) -> SSLModel:
        spec = self.data.spec
        return build_ssl_model(self.model_name, spec.channels, spec.num_classes, spec.image_size, seed,
                               self.tp["proj_hidden"], self.tp["proj_dim"], self.tp["moco_queue"])

    def load(self, state: dict) -> SSLModel:
        model = self.new_model()
        model.load_state_dict(state)
        return self.engine.prepare(model)

    def key(self, kind: str, seed: int, train_indices: torch.Tensor) -> dict[str, Any]:
        return {
            "kind": kind, "task": "ssl", "encoder_version": ENCODER_VERSION, "dataset": self.data.spec.name,
            "data": self.data.fingerprint, "model": self.model_name,
            "recipe": {k: self.tp[k] for k in RECIPE_KEYS}, "seed": seed,
            "train_indices": index_hash(train_indices), "n_train": int(train_indices.numel()),
            **self.engine.weights_key(),
        }

    def get(self, kind: str, seed: int, train_indices: torch.Tensor, desc: str) -> tuple[dict, dict]:
        """(state, meta) of the encoder of `kind` trained on the training images `train_indices`."""
        key = self.key(kind, seed, train_indices)
        mem_key = key_hash(key)
        if mem_key in _memory:
            _memory.move_to_end(mem_key)
            return _memory[mem_key]
        loaded = self.store.load(f"ssl-{kind}", key)
        if loaded is not None:
            state, meta = loaded[0], {**loaded[1], "cached": True}
        else:
            state, meta = self.train(kind, seed, train_indices, desc)
            self.store.save(f"ssl-{kind}", key, state, meta)
            meta = {**meta, "cached": False}
        _memory[mem_key] = (state, meta)
        while len(_memory) > _MEMORY_SLOTS:
            _memory.popitem(last=False)
        return state, meta

    def train(self, kind: str, seed: int, train_indices: torch.Tensor, desc: str) -> tuple[dict, dict]:
        device = self.engine.device
        subset = DeviceData(self.data.train_x[train_indices].to(device), self.data.train_y[train_indices].to(device),
                            train_indices.to(device), kind)
        model = self.engine.prepare(self.new_model(derive_seed(seed, kind, "init") % (2**31)))
        counter = SampleCounter()
        counter.attach(model.online)
        if model.target is not None:
            counter.attach(model.target)
        self.engine.reset_peak_memory()
        stats = train_ssl(self.engine, model, self.objective, subset, self.tp, derive_seed(seed, kind, "train"),
                          self.progress, desc)
        counter.detach()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return state, {**stats, "samples": counter.counts.as_dict(), "peak_memory_mb": self.engine.peak_memory_mb()}
