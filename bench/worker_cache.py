"""What one worker keeps in memory between the cells it runs, in one explicit object.

A worker (the driver process itself, a pool process, a Ray worker) owns one `WorkerCache`
and passes it down to every cell it runs: the decoded datasets, the train/test sets on the
device, the Original/Retrain weights last used, and Retrain's metrics per split. Nothing
here is process-global, so two caches never see each other's entries and a test starts
from an empty one by making a new one.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL_SLOTS = 6  # Original + Retrain of three scenarios for two seeds


@dataclass
class WorkerCache:
    datasets: dict[tuple, Any] = field(default_factory=dict)          # (name, root, cache dir) -> ImageData
    device_sets: dict[tuple, tuple[Any, Any]] = field(default_factory=dict)  # one dataset resident at a time
    models: "OrderedDict[str, tuple[dict, dict]]" = field(default_factory=OrderedDict)  # key hash -> (state, meta)
    reference_metrics: dict[str, dict] = field(default_factory=dict)  # split key -> Retrain's metrics
    model_slots: int = MODEL_SLOTS

    def dataset(self, name: str, root: Path, *, cache: Path | None, download: bool = True):
        """`load_dataset`, decoded once per worker."""
        from bench.data.catalog import load_dataset

        key = (name, str(root), str(cache))
        if key not in self.datasets:
            self.datasets[key] = load_dataset(name, root, cache=cache, download=download)
        return self.datasets[key]

    def model(self, key: str) -> tuple[dict, dict] | None:
        if key in self.models:
            self.models.move_to_end(key)
            return self.models[key]
        return None

    def keep_model(self, key: str, value: tuple[dict, dict]) -> None:
        self.models[key] = value
        while len(self.models) > self.model_slots:
            self.models.popitem(last=False)
