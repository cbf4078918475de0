"""Original: no unlearning at all, the model trained on the whole training set."""

from __future__ import annotations

from dataclasses import dataclass

from bench.method import UnlearnContext, register_method
from bench.tasks import ANY_TASK


@register_method("Original", tasks=(ANY_TASK,))
@dataclass(frozen=True)
class Original:
    """Leave the Original model unchanged: the row every method must improve on."""

    def run(self, ctx: UnlearnContext) -> None:
        return None
