"""The compute cap of a tuning trial, enforced while the method runs.

Every method is charged what the harness counts (the same hooks as the records' PFLOPs:
student and teacher forwards, backwards, double backwards). The guard checks the running
total before each forward of the model being unlearned and stops the procedure with
`BudgetExceeded` once the cap is passed; the tuner turns that into a pruned trial. The cap
is the same for every method of a profile (`[tune] budget_epochs`: passes over the tuning
training set at 6F per sample).
"""

from __future__ import annotations

import torch.nn as nn

from bench.errors import CellFailure
from bench.flops import CostModel, SampleCounter


class BudgetExceeded(CellFailure):
    pass


class BudgetGuard:
    def __init__(self, counter: SampleCounter, costs: CostModel, budget_pflops: float):
        self.counter, self.costs, self.budget = counter, costs, budget_pflops

    def attach(self, model: nn.Module):
        """Check before every forward of `model`'s backbone (where the counter counts); returns the hook handle.
        Steps replayed from a CUDA graph run no hooks: the context calls `check` before each replay."""
        return model.backbone.register_forward_pre_hook(lambda module, args: self.check())  # host arithmetic: no sync

    def check(self) -> None:
        spent = self.costs.pflops(self.counter.counts)
        if spent > self.budget:
            raise BudgetExceeded(f"compute cap reached: {spent:.4g} of {self.budget:.4g} PFLOPs spent")


def budget_pflops(epochs: float, n_train: int, costs: CostModel) -> float:
    """`epochs` passes over `n_train` samples at 6F per sample (a trained sample), in PFLOPs."""
    return epochs * n_train * 6 * costs.forward_macs / 1e15
