"""The ssl task's data: members, non-members, the GP non-member pool, and the forget split.

Members are `members` training images drawn by a seeded permutation of the training set; the
non-member pool is the next `nonmember_pool` of that permutation (training images that are
never members); non-members (D_t) are the first `nonmembers` test images. The scenario draws
the forget set among the members (random20 = 20% of them). All indices are training- or
test-set indices, so a record names exactly which images played which role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from bench.errors import ConfigError
from bench.splits import Scenario, Split, derive_seed, draw_split, index_hash


@dataclass(frozen=True)
class Setting:
    members: torch.Tensor  # sorted training-set indices
    pool: torch.Tensor  # sorted training-set indices outside the members
    nonmembers: torch.Tensor  # test-set indices
    split: Split  # forget/retain as positions within `members`
    nonmember_eval_pos: torch.Tensor  # positions within the non-members, |D_f| of them (balanced audit)

    @property
    def forget(self) -> torch.Tensor:
        return self.members[self.split.forget]

    @property
    def retain(self) -> torch.Tensor:
        return self.members[self.split.retain]

    def describe(self) -> dict[str, Any]:
        return {
            "members": {"n": len(self.members), "hash": index_hash(self.members),
                        "draw": "sorted(randperm(n_train, seed=derive_seed(seed, 'ssl-members'))[:members])"},
            "nonmember_pool": {"n": len(self.pool), "hash": index_hash(self.pool),
                               "draw": "the next nonmember_pool of the same permutation"},
            "nonmembers": {"n": len(self.nonmembers), "draw": "the first nonmembers test images"},
            "forget_within_members": self.split.describe(),
            "forget_train_indices_hash": index_hash(self.forget),
            "nonmember_eval": {"n": len(self.nonmember_eval_pos), "hash": index_hash(self.nonmember_eval_pos)},
        }


def draw_setting(train_labels: torch.Tensor, n_test: int, scenario: Scenario, seed: int,
                 tp: Mapping[str, Any]) -> Setting:
    n_train = int(train_labels.shape[0])
    m, pool_n, non_n = tp["members"], tp["nonmember_pool"], tp["nonmembers"]
    if m + pool_n > n_train:
        raise ConfigError(f"ssl task: members ({m}) + nonmember_pool ({pool_n}) exceed the {n_train} training images")
    if non_n > n_test:
        raise ConfigError(f"ssl task: nonmembers ({non_n}) exceed the {n_test} test images")
    perm = torch.randperm(n_train, generator=torch.Generator().manual_seed(derive_seed(seed, "ssl-members")))
    members = perm[:m].sort().values
    pool = perm[m:m + pool_n].sort().values
    split = draw_split(scenario, train_labels[members], seed)
    n_eval = min(len(split.forget), non_n)
    eval_gen = torch.Generator().manual_seed(derive_seed(seed, "ssl-nonmember-eval"))
    eval_pos = torch.randperm(non_n, generator=eval_gen)[:n_eval].sort().values
    return Setting(members, pool, torch.arange(non_n), split, eval_pos)
