"""Forget/retain splits: reproducible, disjoint, complete, and redrawable from their recipe."""

from __future__ import annotations

import pytest
import torch

from bench.errors import ConfigError
from bench.splits import derive_seed, draw_split, index_hash, parse_scenario

LABELS = torch.arange(1000) % 10


def test_random_split_has_the_right_size_and_is_disjoint_and_complete():
    split = draw_split(parse_scenario("random10", 10), LABELS, seed=3)
    assert len(split.forget) == 100 and len(split.retain) == 900
    assert set(split.forget.tolist()).isdisjoint(split.retain.tolist())
    assert sorted(split.forget.tolist() + split.retain.tolist()) == list(range(1000))


def test_random_split_is_reproducible_and_seed_dependent():
    s = parse_scenario("random50", 10)
    assert torch.equal(draw_split(s, LABELS, 1).forget, draw_split(s, LABELS, 1).forget)
    assert not torch.equal(draw_split(s, LABELS, 1).forget, draw_split(s, LABELS, 2).forget)


def test_recipe_redraws_the_same_indices():
    split = draw_split(parse_scenario("random10", 10), LABELS, seed=7)
    recipe = split.recipe()
    gen = torch.Generator(device="cpu").manual_seed(recipe["seed"])
    redrawn = torch.randperm(recipe["n_train"], generator=gen)[: recipe["n_forget"]].sort().values
    assert torch.equal(redrawn, split.forget)
    assert split.describe()["forget_hash"] == index_hash(redrawn)


def test_class_split_forgets_exactly_that_class():
    split = draw_split(parse_scenario("class", 10, default_class=9), LABELS, seed=0)
    assert split.scenario.name == "class9"
    assert (LABELS[split.forget] == 9).all() and (LABELS[split.retain] != 9).all()
    assert len(split.forget) == 100


@pytest.mark.parametrize("bad", ["random0", "random100", "random", "class10", "classy", "half"])
def test_bad_scenarios_are_config_errors(bad):
    with pytest.raises(ConfigError):
        parse_scenario(bad, 10)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, "original") == derive_seed(0, "original")
    assert derive_seed(0, "original") != derive_seed(0, "retrain")
    assert derive_seed(0, "original") != derive_seed(1, "original")
