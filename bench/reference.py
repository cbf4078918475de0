"""The models every cell starts from or is compared with: Original and Retrain.

Original trains on the whole training set, Retrain on the retain set, both with
the profile's supervised recipe. Both are cached as checkpoints keyed by
everything that determines them (data content, model, recipe, training
indices, seed, precision, engine version) and kept in memory across the cells
of one process.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from typing import Any

import torch

from bench.checkpoints import CheckpointStore, key_hash
from bench.data.catalog import ImageData
from bench.data.device_data import DeviceData
from bench.engine import Engine, TrainRecipe
from bench.environment import cpu_kernels
from bench.flops import SampleCounter, SampleCounts
from bench.models import Classifier, build_model
from bench.progress import SILENT, Progress
from bench.splits import Split, derive_seed, index_hash

# Bump when the engine's training semantics change: old checkpoints then no longer match.
ENGINE_VERSION = 1
_MEMORY_SLOTS = 6
_memory: "OrderedDict[str, tuple[dict, dict]]" = OrderedDict()
_device_sets: dict[tuple, tuple[DeviceData, DeviceData]] = {}


def device_sets(data: ImageData, device: torch.device) -> tuple[DeviceData, DeviceData]:
    """The whole train and test sets on `device`, uploaded once per process."""
    key = (data.spec.name, data.fingerprint, str(device))
    if key not in _device_sets:
        n_train, n_test = len(data.train_y), len(data.test_y)
        train = DeviceData(data.train_x.to(device), data.train_y.to(device), torch.arange(n_train, device=device), "train")
        test = DeviceData(data.test_x.to(device), data.test_y.to(device), torch.arange(n_test, device=device), "test")
        _device_sets.clear()  # one dataset resident at a time
        _device_sets[key] = (train, test)
    return _device_sets[key]


class ReferenceModels:
    def __init__(self, engine: Engine, data: ImageData, model_name: str, recipe: TrainRecipe,
                 store: CheckpointStore, progress: Progress = SILENT):
        self.engine = engine
        self.data = data
        self.model_name = model_name
        self.recipe = recipe
        self.store = store
        self.progress = progress

    def new_model(self, seed: int = 0) -> Classifier:
        spec = self.data.spec
        return build_model(self.model_name, spec.channels, spec.num_classes, spec.image_size, seed)

    def load(self, state: dict) -> Classifier:
        model = self.new_model()
        model.load_state_dict(state)
        return self.engine.prepare(model)

    def _key(self, kind: str, seed: int, train_indices: torch.Tensor) -> dict[str, Any]:
        return {
            "kind": kind,
            "engine_version": ENGINE_VERSION,
            "dataset": self.data.spec.name,
            "data": self.data.fingerprint,
            "model": self.model_name,
            "recipe": dataclasses.asdict(self.recipe),
            "seed": seed,
            "train_indices": index_hash(train_indices),
            "n_train": int(train_indices.numel()),
            "precision": "bf16-autocast" if self.engine.amp else "fp32",
            # CPU weights depend on the kernels (bench/numerics.py): a model trained with others is not reused
            **({"cpu_kernels": cpu_kernels()} if self.engine.device.type == "cpu" else {}),
        }

    def original(self, seed: int) -> tuple[dict, dict]:
        all_indices = torch.arange(len(self.data.train_y))
        return self._get_or_train("original", seed, all_indices, f"Original s{seed}")

    def retrain(self, split: Split) -> tuple[dict, dict]:
        return self._get_or_train("retrain", split.seed, split.retain, f"Retrain {split.scenario.name} s{split.seed}")

    def _get_or_train(self, kind: str, seed: int, indices: torch.Tensor, desc: str) -> tuple[dict, dict]:
        key = self._key(kind, seed, indices)
        mem_key = key_hash(key)
        if mem_key in _memory:
            _memory.move_to_end(mem_key)
            return _memory[mem_key]
        loaded = self.store.load(kind, key)
        if loaded is not None:
            state, meta = loaded
            meta = {**meta, "cached": True}
        else:
            state, meta = self._train(kind, seed, indices, desc)
            self.store.save(kind, key, state, meta)
            meta = {**meta, "cached": False}
        _memory[mem_key] = (state, meta)
        while len(_memory) > _MEMORY_SLOTS:
            _memory.popitem(last=False)
        return state, meta

    def _train(self, kind: str, seed: int, indices: torch.Tensor, desc: str) -> tuple[dict, dict]:
        train_all, _ = device_sets(self.data, self.engine.device)
        subset = train_all.take(indices.to(self.engine.device), name=kind)
        model = self.engine.prepare(self.new_model(derive_seed(seed, kind, "init")))
        counter = SampleCounter()
        counter.attach(model)
        self.engine.reset_peak_memory()
        stats = self.engine.train_supervised(model, subset, self.recipe, derive_seed(seed, kind, "train"), self.progress, desc)
        counter.detach()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return state, {**stats, "samples": counter.counts.as_dict(), "peak_memory_mb": self.engine.peak_memory_mb()}


def counts_from_meta(meta: dict) -> SampleCounts:
    return SampleCounts(**meta["samples"])
