"""Unlearning metrics, exactly as pinned in docs/methods.md.

RA = acc(D_r), UA = 100 - acc(D_f), TA = acc(D_t), all in percent, eval mode,
no augmentation. MIA-efficacy: an RBF SVC (C=3, gamma="auto") trained on the
true-label softmax confidence of shadow members (the first |D_t| samples of D_r,
label 1) against shadow non-members (D_t, label 0); efficacy is the percentage
of D_f it predicts non-member. The SVC's solver tolerance is tightened
(`MIA_SVC["tol"]`, sklearn's default 1e-3 stops early enough that float rounding of
the confidences alone moved MIA-efficacy by 0.56 points on a small cell), so the
number is a function of the model, not of the device or batch size that computed
its outputs. Outputs are computed in float32 (`EVAL_PRECISION`), never under bf16
autocast, so argmax near-ties do not depend on reduced precision. Avg-Gap: mean
|metric - Retrain's metric| over RA, UA, TA and MIA, per seed (each cell against
the Retrain of its own split and seed); the tables add the gap of the means over
seeds (`gap_of_means`, CoUn's form).

A method that needs non-members (GP's full form) gets a pool disjoint from every
evaluation set: with `nonmember_pool="test-half"` a seeded half of the test set, and
TA, the MIA shadow non-members and the forgotten class's test accuracy use the other
half only; with "none" (the default, the papers' evaluation on the whole test set)
there is no pool and a method asking for one fails.

For class-wise forgetting, D_t is the test set without the forgotten class
(`classwise_test="remaining"`, the default) or the whole test set ("all"); the
forgotten class's own test accuracy is reported as `forget_class_TA`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from bench.data.device_data import DeviceData
from bench.engine import Engine
from bench.names import GAP_METRICS
from bench.splits import derive_seed, index_hash

MIA_SVC = {"C": 3, "gamma": "auto", "kernel": "rbf", "tol": 1e-6}  # methods.md, with a tight solver tolerance
EVAL_PRECISION = "fp32"
CLASSWISE_TEST_CHOICES = ("remaining", "all")
NONMEMBER_POOLS = ("none", "test-half")


def accuracy_percent(correct: torch.Tensor) -> float:
    return 100.0 * correct.float().mean().item() if correct.numel() else float("nan")


def mia_efficacy(member_conf: np.ndarray, nonmember_conf: np.ndarray, target_conf: np.ndarray) -> float:
    """Percentage of `target_conf` samples an SVC on (member vs non-member) confidence calls non-member."""
    from sklearn.svm import SVC

    if len(target_conf) == 0:
        return float("nan")
    x = np.concatenate([member_conf, nonmember_conf]).astype(np.float64).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member_conf)), np.zeros(len(nonmember_conf))])
    clf = SVC(**MIA_SVC)
    clf.fit(x, y)
    pred = clf.predict(np.asarray(target_conf, dtype=np.float64).reshape(-1, 1))
    return 100.0 * float((pred == 0).mean())


def avg_gap(metrics: dict, reference: dict, keys: tuple[str, ...] | list[str] = GAP_METRICS) -> float:
    return float(np.mean([abs(metrics[k] - reference[k]) for k in keys]))


def gap_of_means(metrics: list[dict], references: list[dict], keys: tuple[str, ...] | list[str] = GAP_METRICS) -> float:
    """CoUn's Avg-Gap: each metric averaged over seeds first (the cells' and their Retrains'),
    then the mean |difference| over `keys` (a task's gap metrics; RA, UA, TA, MIA for classifiers).
    Equals `avg_gap` for one seed."""
    if not metrics or len(metrics) != len(references):
        raise ValueError("gap_of_means needs one Retrain reference per cell")
    ours = {k: float(np.mean([m[k] for m in metrics])) for k in keys}
    theirs = {k: float(np.mean([r[k] for r in references])) for k in keys}
    return avg_gap(ours, theirs, keys)


@dataclass(frozen=True)
class EvalSets:
    """The sets a cell is measured on, resident on the device."""

    retain: DeviceData
    forget: DeviceData
    test: DeviceData  # D_t as used for TA and the MIA shadow non-members
    forget_class_test: DeviceData | None  # class-wise only: test samples of the forgotten class
    nonmember_pool: DeviceData | None = None  # held-out non-members a method may train on; never evaluated

    @classmethod
    def build(cls, retain: DeviceData, forget: DeviceData, full_test: DeviceData, forget_class: int | None,
              classwise_test: str = "remaining", nonmember_pool: DeviceData | None = None) -> "EvalSets":
        """`full_test`: the test samples evaluation may use (without any non-member pool)."""
        if forget_class is None:
            return cls(retain, forget, full_test, None, nonmember_pool)
        test = full_test.without_class(forget_class) if classwise_test == "remaining" else full_test
        return cls(retain, forget, test, full_test.of_class(forget_class), nonmember_pool)

    def describe(self) -> dict:
        """What the record says about the evaluation sets (sizes, and the pool's index hash)."""
        pool = self.nonmember_pool
        return {"test_size": len(self.test), "shadow_members": min(len(self.test), len(self.retain)),
                "nonmember_pool": None if pool is None else {"size": len(pool), "index_hash": index_hash(pool.index)}}


def hold_out_nonmembers(test: DeviceData, choice: str, seed: int) -> tuple[DeviceData, DeviceData | None]:
    """(the test samples evaluation uses, the non-member pool or None). "test-half": a seeded
    random half of the test set (drawn on the CPU, so the same on every device) is the pool."""
    if choice == "none":
        return test, None
    if choice != "test-half":
        raise ValueError(f"unknown non-member pool {choice!r}; use one of {', '.join(NONMEMBER_POOLS)}")
    generator = torch.Generator(device="cpu").manual_seed(derive_seed("nonmember-pool", seed))
    order = torch.randperm(len(test), generator=generator)
    half = len(test) // 2
    pool, kept = order[:half].sort().values, order[half:].sort().values
    return test.take(kept, name=test.name), test.take(pool, name="nonmember_pool")


def evaluate(engine: Engine, model: nn.Module, sets: EvalSets, batch_size: int = 1024) -> dict[str, float]:
    """RA, UA, TA, MIA (and forget_class_TA for class-wise) of `model`."""
    retain_conf, retain_ok = engine.true_label_outputs(model, sets.retain, batch_size)
    forget_conf, forget_ok = engine.true_label_outputs(model, sets.forget, batch_size)
    test_conf, test_ok = engine.true_label_outputs(model, sets.test, batch_size)
    shadow_members = retain_conf[: len(sets.test)]
    metrics = {
        "RA": accuracy_percent(retain_ok),
        "UA": 100.0 - accuracy_percent(forget_ok),
        "TA": accuracy_percent(test_ok),
        "MIA": mia_efficacy(shadow_members.cpu().numpy(), test_conf.cpu().numpy(), forget_conf.cpu().numpy()),
    }
    if sets.forget_class_test is not None:
        _, ok = engine.true_label_outputs(model, sets.forget_class_test, batch_size)
        metrics["forget_class_TA"] = accuracy_percent(ok)
    return metrics
