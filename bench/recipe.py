"""The supervised training recipe of Original and Retrain (plain data: importable without torch,
so a profile can be read and checked before anything heavy is loaded)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrainRecipe:
    """Supervised training (Original and Retrain). Defaults: the paper recipe."""

    epochs: int = 182
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    batch_size: int = 256
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training at which lr is multiplied by gamma
    gamma: float = 0.1

    def milestone_epochs(self) -> list[int]:
        return [int(round(m * self.epochs)) for m in self.milestones]
