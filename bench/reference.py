"""The models every cell starts from or is compared with: Original and Retrain.

Original trains on the whole training set, Retrain on the retain set, both with
the profile's supervised recipe. Both are cached as checkpoints keyed by
everything that determines them (data content, model, recipe, training
indices, seed, precision, engine version) and kept in the worker's `WorkerCache`
across the cells it runs. Training a checkpoint holds a file lock on its key, so two
workers (or two `bench run`s) that want the same model at once train it once: the
second waits and loads what the first saved.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from bench.checkpoints import CheckpointStore, key_hash
from bench.locks import FileLock
from bench.data.catalog import ImageData
from bench.data.device_data import DeviceData
from bench.engine import Engine, TrainRecipe
from bench.flops import SampleCounter, SampleCounts
from bench.models import Classifier, build_model
from bench.progress import SILENT, Progress
from bench.splits import Split, derive_seed, index_hash
from bench.worker_cache import WorkerCache

# Bump when the engine's training semantics change: old checkpoints then no longer match.
ENGINE_VERSION = 1


def device_sets(data: ImageData, device: torch.device, cache: WorkerCache | None = None) -> tuple[DeviceData, DeviceData]:
    """The whole train and test sets on `device`, uploaded once per worker (`cache`)."""
    held = cache.device_sets if cache is not None else {}
    key = (data.spec.name, data.fingerprint, str(device))
    if key not in held:
        n_train, n_test = len(data.train_y), len(data.test_y)
        train = DeviceData(data.train_x.to(device), data.train_y.to(device), torch.arange(n_train, device=device), "train")
        test = DeviceData(data.test_x.to(device), data.test_y.to(device), torch.arange(n_test, device=device), "test")
        held.clear()  # one dataset resident at a time
        held[key] = (train, test)
    return held[key]


class ReferenceModels:
    def __init__(self, engine: Engine, data: ImageData, model_name: str, recipe: TrainRecipe,
                 store: CheckpointStore, progress: Progress = SILENT, cache: WorkerCache | None = None,
                 run_id: str = ""):
        self.cache = cache if cache is not None else WorkerCache()
        self.run_id = run_id  # a checkpoint trained under this id counts as trained by this run, not cached
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

    def _key(self, kind: str, seed: int, train_indices: torch.Tensor, replica: int = 0) -> dict[str, Any]:
        key = {
            "kind": kind,
            "engine_version": ENGINE_VERSION,
            "dataset": self.data.spec.name,
            "data": self.data.fingerprint,
            "model": self.model_name,
            "recipe": dataclasses.asdict(self.recipe),
            "seed": seed,
            "train_indices": index_hash(train_indices),
            "n_train": int(train_indices.numel()),
            # precision; on the CPU the kernels and threads: a model trained with others is not reused
            **self.engine.weights_key(),
        }
        if replica:
            key["replica"] = replica
        return key

    def original(self, seed: int) -> tuple[dict, dict]:
        all_indices = torch.arange(len(self.data.train_y))
        return self._get_or_train("original", seed, all_indices, f"Original s{seed}")

    def retrain(self, split: Split, replica: int = 0) -> tuple[dict, dict]:
        """Retrain on the split's D_r; replica k > 0 is the same recipe with another initialisation
        and data order (the audit's Retrain ensemble)."""
        desc = f"Retrain {split.scenario.name} s{split.seed}" + (f" rep{replica}" if replica else "")
        return self._get_or_train("retrain", split.seed, split.retain, desc, replica)

    def _get_or_train(self, kind: str, seed: int, indices: torch.Tensor, desc: str, replica: int = 0) -> tuple[dict, dict]:
        key = self._key(kind, seed, indices, replica)
        mem_key = key_hash(key)
        held = self.cache.model(mem_key)
        if held is not None:
            return held
        loaded, trained = self.store.load(kind, key), False
        if loaded is None:
            with FileLock(self.store.lock_path(kind, key)):
                loaded = self.store.load(kind, key)  # another worker may have trained it while we waited
                if loaded is None:
                    state, meta = self._train(kind, seed, indices, desc, replica)
                    meta = {**meta, "run": self.run_id}
                    self.store.save(kind, key, state, meta)
                    loaded, trained = (state, meta), True
        state, meta = loaded
        # "cached": the cost and time were measured by an earlier run, not by this one (a
        # checkpoint another worker of this run trained carries this run's id)
        meta = {**meta, "cached": not trained and (not self.run_id or meta.get("run") != self.run_id)}
        self.cache.keep_model(mem_key, (state, meta))
        return state, {**meta, "trained_now": trained}  # False when held in memory or on disk

    def _train(self, kind: str, seed: int, indices: torch.Tensor, desc: str, replica: int = 0) -> tuple[dict, dict]:
        train_all, _ = device_sets(self.data, self.engine.device, self.cache)
        subset = train_all.take(indices.to(self.engine.device), name=kind)
        extra = ("replica", replica) if replica else ()
        model = self.engine.prepare(self.new_model(derive_seed(seed, kind, "init", *extra)))
        counter = SampleCounter()
        counter.attach(model)
        self.engine.reset_peak_memory()
        stats = self.engine.train_supervised(model, subset, self.recipe, derive_seed(seed, kind, "train", *extra), self.progress, desc,
                                             counter=counter)
        counter.detach()
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return state, {**stats, "samples": counter.counts.as_dict(), "peak_memory_mb": self.engine.peak_memory_mb()}


def counts_from_meta(meta: dict) -> SampleCounts:
    return SampleCounts(**meta["samples"])
