"""Shared fixtures: a tiny but real cell (digits, small CNN, a 3-epoch Original) on the CPU."""

from __future__ import annotations

import pytest
import torch

from bench.cell import CellSpec, PreparedCell, prepare_cell
from bench.plugins import load_all_methods

TINY_TRAIN = {"epochs": 3, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
              "milestones": [0.5, 0.75], "gamma": 0.1}
TINY_EVAL = {"batch_size": 1024, "classwise_test": "remaining"}


@pytest.fixture(scope="session", autouse=True)
def _registered_methods_and_threads():
    load_all_methods()
    torch.set_num_threads(2)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    """One checkpoint/tensor cache for the session, so the tiny Original trains once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture
def tiny_spec(cache_dir):
    def make(method: str = "Original", scenario: str = "random10", seed: int = 0, params: dict | None = None,
             train: dict | None = None, eval: dict | None = None) -> CellSpec:
        return CellSpec(
            profile="test", method=method, params=params or {}, dataset="digits", model="small_cnn",
            scenario=scenario, seed=seed, train=train or TINY_TRAIN, eval={**TINY_EVAL, **(eval or {})}, device="cpu",
            data_root=str(cache_dir / "data"), cache_dir=str(cache_dir), download=False,
        )

    return make


@pytest.fixture
def tiny_cell(tiny_spec):
    """A PreparedCell: `cell.ctx` is a real UnlearnContext on the Original weights of a tiny run."""

    def make(method: str = "Original", scenario: str = "random10", seed: int = 0, params: dict | None = None,
             eval: dict | None = None) -> PreparedCell:
        return prepare_cell(tiny_spec(method, scenario, seed, params, eval=eval))

    return make
