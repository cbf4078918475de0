"""Hyperparameters and profiles: typed, validated, one-line errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bench import profiles
from bench.errors import ConfigError
from bench.hparams import build_params, hp


@dataclass(frozen=True)
class Params:
    epochs: int = hp(10, low=1)
    lr: float = hp(0.1, low=0.0, high=1.0)
    mode: str = hp("a", choices=("a", "b"))
    flag: bool = hp(False)


def test_overrides_are_coerced_from_strings():
    p = build_params(Params, {"epochs": "3", "lr": "0.5", "mode": "b", "flag": "true"}, "M")
    assert p == Params(epochs=3, lr=0.5, mode="b", flag=True)


@pytest.mark.parametrize("key,value,words", [
    ("epochs", "0", "below the minimum"),
    ("epochs", "2.5", "expected int"),
    ("lr", "2", "above the maximum"),
    ("mode", "c", "not one of"),
    ("flag", "maybe", "expected bool"),
    ("epoch", "3", "has no hyperparameter 'epoch'"),
])
def test_bad_overrides_are_config_errors(key, value, words):
    with pytest.raises(ConfigError, match=words):
        build_params(Params, {key: value}, "M")


@pytest.mark.parametrize("name", profiles.available())
def test_shipped_profiles_parse(name):
    profile = profiles.load(name)
    assert profile.train.epochs >= 1 and profile.seeds


def test_the_paper_profile_uses_the_paper_recipe():
    train = profiles.load("cifar10").train
    assert (train.epochs, train.lr, train.momentum, train.weight_decay, train.batch_size) == (182, 0.1, 0.9, 5e-4, 256)
    assert train.milestone_epochs() == [91, 136]


@pytest.mark.parametrize("raw,words", [
    ({"dataset": "digits", "epochs": 3}, "unknown key"),
    ({"dataset": "digits", "train": {"epoch": 3}}, "unknown key 'epoch'"),
    ({"dataset": "digits", "train": {"lr": -1.0}}, "lr must be > 0"),
    ({"dataset": "digits", "seeds": []}, "seeds"),
    ({"dataset": "digits", "device": "tpu"}, "device"),
    ({"dataset": "digits", "eval": {"classwise_test": "some"}}, "not one of"),
    ({}, "'dataset' is required"),
])
def test_bad_profiles_are_config_errors(raw, words):
    with pytest.raises(ConfigError, match=words):
        profiles.parse(raw, name="bad")


def test_unknown_profile_and_broken_toml(tmp_path):
    with pytest.raises(ConfigError, match="unknown profile"):
        profiles.load("nope")
    broken = tmp_path / "broken.toml"
    broken.write_text("dataset = \n")
    with pytest.raises(ConfigError, match="broken"):
        profiles.load(str(broken))
