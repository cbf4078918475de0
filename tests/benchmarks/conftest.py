"""Settings of the engine benchmarks (tests/benchmarks/test_bench_engine.py).

Environment (defaults: the GPU setting on CUDA, a small CPU setting elsewhere):
  UNLEARN_BENCH_PERF_DATASET   dataset (cifar10 on CUDA, digits on the CPU)
  UNLEARN_BENCH_PERF_MODEL     model (resnet18 on CUDA, small_cnn on the CPU)
  UNLEARN_BENCH_PERF_STEPS     timed steps per round (50 on CUDA, 5 on the CPU)
  UNLEARN_BENCH_PERF_PROFILE   profile for the per-method benchmark (cifar10-perf on CUDA, quick on the CPU)
  UNLEARN_BENCH_PERF_METHODS   methods for the per-method benchmark, comma-separated (all)
  UNLEARN_BENCH_DATA           where the dataset is (e.g. .data with the CIFAR-10 archive)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest
import torch


@dataclass(frozen=True)
class PerfSetting:
    device: torch.device
    dataset: str
    model: str
    steps: int
    profile: str
    methods: list[str] | None


@pytest.fixture(scope="session")
def perf_setting() -> PerfSetting:
    cuda = torch.cuda.is_available()
    env = os.environ.get
    return PerfSetting(
        device=torch.device("cuda" if cuda else "cpu"),
        dataset=env("UNLEARN_BENCH_PERF_DATASET", "cifar10" if cuda else "digits"),
        model=env("UNLEARN_BENCH_PERF_MODEL", "resnet18" if cuda else "small_cnn"),
        steps=int(env("UNLEARN_BENCH_PERF_STEPS", "50" if cuda else "5")),
        profile=env("UNLEARN_BENCH_PERF_PROFILE", "cifar10-perf" if cuda else "quick"),
        methods=[m for m in env("UNLEARN_BENCH_PERF_METHODS", "").split(",") if m] or None,
    )


@pytest.fixture(scope="session")
def perf_data(perf_setting):
    from bench import paths
    from bench.data.catalog import load_dataset
    from bench.plugins import load_all_methods

    load_all_methods()
    return load_dataset(perf_setting.dataset, paths.data_root(None), cache=paths.cache_dir(None), download=False)
