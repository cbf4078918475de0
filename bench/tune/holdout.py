"""The data a tuning cell sees: the training set minus a validation slice, which stands in for D_t.

Tuning never reads the test set. A tuning cell's dataset is derived from the real one:
`holdout` of the training set (a seeded draw, stratified by nothing, recorded by its
indices' hash) becomes the "test" set, and the rest is the training set from which the
forget set is drawn and on which the tuning Original and Retrain are trained. The real
test images are dropped before anything is built from the data, so a poisoned D_t cannot
change a study (tests/test_tune.py checks this).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch

from bench.data.catalog import ImageData
from bench.errors import ConfigError
from bench.splits import index_hash


@dataclass(frozen=True)
class Holdout:
    fraction: float  # share of the training set held out as the validation slice
    seed: int  # seeds the draw (a tuning seed: never a reported seed)

    def indices(self, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(kept training indices, held-out validation indices), both sorted, into the original training set."""
        n_val = int(round(self.fraction * n_train))
        if not 0 < n_val < n_train:
            raise ConfigError(f"tune holdout {self.fraction} of {n_train} training samples holds out {n_val}; "
                              "choose a fraction in (0, 1)")
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        perm = torch.randperm(n_train, generator=gen)
        return perm[n_val:].sort().values, perm[:n_val].sort().values

    def apply(self, data: ImageData) -> ImageData:
        """`data` with the validation slice as its test set and the rest as its training set."""
        keep, val = self.indices(len(data.train_y))
        spec = replace(data.spec, train_size=len(keep), test_size=len(val))
        return ImageData(spec=spec, train_x=data.train_x[keep], train_y=data.train_y[keep],
                         test_x=data.train_x[val], test_y=data.train_y[val],
                         source=f"{data.source} (tuning: {len(val)} training samples held out as validation)")

    def describe(self, n_train: int) -> dict[str, Any]:
        keep, val = self.indices(n_train)
        return {"fraction": self.fraction, "seed": self.seed, "n_train_original": n_train, "n_validation": len(val),
                "n_train_kept": len(keep), "validation_hash": index_hash(val),
                "draw": "sorted(torch.randperm(n_train, generator=torch.Generator('cpu').manual_seed(seed))"
                        "[:round(fraction * n_train)]) of the training set; the test set is not used"}
