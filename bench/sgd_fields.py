"""The SGD hyperparameters most method files share, declared once with their search ranges.

A method keeps its own defaults and documents them; the bounds, the search range
`bench tune` explores and the description live here:

    from bench import sgd_fields as sgd

    epochs: int = sgd.epochs(42, doc="passes over D_r")
    lr: float = sgd.lr(0.02)
    momentum: float = sgd.momentum()

Ranges: lr in [0.01, 0.1] and at most 50 epochs are the CoUn protocol's (methods.md,
"Standard settings"); batch sizes are searched over powers of two from 32, so small
forget sets still get several steps per pass. Momentum and weight decay are fixed by
every protocol we follow (0.9, 5e-4) and are not searched unless a method says so.
"""

from __future__ import annotations

from typing import Any

from bench.hparams import SearchSpace, choice, hp, int_range, log

LR_SEARCH = log(0.01, 0.1)
EPOCHS_SEARCH = int_range(1, 50, schedule=True)
BATCH_SEARCH = choice(32, 64, 128, 256)
SCHEDULES = ("cosine", "constant")


def epochs(default: int, *, doc: str = "passes over the data", search: SearchSpace | None = EPOCHS_SEARCH) -> Any:
    return hp(default, low=1, search=search, doc=doc)


def lr(default: float, *, doc: str = "initial learning rate (cosine decay to final_lr)",
       search: SearchSpace | None = LR_SEARCH, main: bool = True) -> Any:
    return hp(default, low=0.0, search=search, main=main, doc=doc)


def final_lr(default: float = 1e-4, *, doc: str = "learning rate at the end of the cosine schedule") -> Any:
    return hp(default, low=0.0, doc=doc)


def momentum(default: float = 0.9, *, search: SearchSpace | None = None) -> Any:
    return hp(default, low=0.0, high=0.999, search=search, doc="SGD momentum")


def weight_decay(default: float = 5e-4, *, doc: str = "SGD weight decay", search: SearchSpace | None = None) -> Any:
    return hp(default, low=0.0, search=search, doc=doc)


def batch_size(default: int, *, low: int = 1, doc: str = "samples per batch",
               search: SearchSpace | None = BATCH_SEARCH) -> Any:
    return hp(default, low=low, search=search, doc=doc)


def lr_schedule(default: str, *, doc: str = "[choice] cosine to final_lr, or a constant lr",
                search: SearchSpace | None = None) -> Any:
    return hp(default, choices=SCHEDULES, search=search, doc=doc)
