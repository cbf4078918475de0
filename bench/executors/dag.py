"""A grid as a DAG of jobs: Original(seed) and Retrain(split) feed the cells that need them.

Every cell needs its seed's Original (the weights it starts from) and its split's Retrain
(the model it is compared with). Each of those models is one job, scheduled before the
cells that need it, so a model is trained once per grid however many workers run cells;
the checkpoint lock (bench.reference) covers two grids that want the same model at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from bench.cell import CellSpec
from bench.method import METHODS
from bench.tasks import CLASSIFY


@dataclass(frozen=True)
class Job:
    key: str
    kind: str  # "original", "retrain" or "cell"
    spec: CellSpec  # for a model job: a cell needing it (its data, model, recipe, seed, scenario)
    needs: tuple[str, ...] = ()
    method_module: str = ""  # imported by the worker first: a method registered outside baselines/ and methods/


    @property
    def label(self) -> str:
        if self.kind == "original":
            return f"Original s{self.spec.seed}"
        if self.kind == "retrain":
            return f"Retrain {self.spec.scenario} s{self.spec.seed}"
        return self.spec.cell_id


def _model_key(kind: str, spec: CellSpec) -> str:
    what = {"dataset": spec.dataset, "model": spec.model, "train": spec.train, "seed": spec.seed, "device": spec.device,
            "data_root": spec.data_root, "cache_dir": spec.cache_dir}
    if kind == "retrain":
        what |= {"scenario": spec.scenario, "forget_class": spec.forget_class}
    return f"{kind}:" + hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


def build_dag(specs: list[CellSpec]) -> list[Job]:
    """Model jobs first (in the order cells first need them), then the cells in their given order."""
    models: dict[str, Job] = {}
    cells = []
    for spec in specs:
        needs = []
        # the classifier's Original and Retrain are harness jobs (bench.reference); other tasks'
        # cells train and cache their own under the same checkpoint locks
        for kind in ("original", "retrain") if spec.task == CLASSIFY else ():
            key = _model_key(kind, spec)
            models.setdefault(key, Job(key, kind, spec))
            needs.append(key)
        module = METHODS.get(spec.method).cls.__module__
        cells.append(Job(f"cell:{spec.cell_id}", "cell", spec, tuple(needs), module))
    return [*models.values(), *cells]
