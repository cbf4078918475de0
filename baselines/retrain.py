"""Retrain: the gold standard, trained from scratch on the retain set."""

from __future__ import annotations

from dataclasses import dataclass

from bench.method import UnlearnContext, register_method
from bench.tasks import ANY_TASK


@register_method("Retrain", tasks=(ANY_TASK,))
@dataclass(frozen=True)
class Retrain:
    """Train from scratch on D_r with the profile's Original recipe (exact unlearning)."""

    def run(self, ctx: UnlearnContext) -> None:
        # The harness trains (or loads from its checkpoint cache) the same Retrain model that
        # every other cell of this split and seed is compared with; the cost and time reported
        # are those of that training run.
        ctx.retrain()
