"""Unlearning metrics, exactly as pinned in docs/methods.md.

RA = acc(D_r), UA = 100 - acc(D_f), TA = acc(D_t), all in percent, eval mode,
no augmentation. MIA-efficacy: an RBF SVC (C=3, gamma="auto") trained on the
true-label softmax confidence of shadow members (the first |D_t| samples of D_r,
label 1) against shadow non-members (D_t, label 0); efficacy is the percentage
of D_f it predicts non-member. Avg-Gap: mean |metric - Retrain's metric| over
RA, UA, TA and MIA.

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

CLASSWISE_TEST_CHOICES = ("remaining", "all")


def accuracy_percent(correct: torch.Tensor) -> float:
    return 100.0 * correct.float().mean().item() if correct.numel() else float("nan")


def mia_efficacy(member_conf: np.ndarray, nonmember_conf: np.ndarray, target_conf: np.ndarray) -> float:
    """Percentage of `target_conf` samples an SVC on (member vs non-member) confidence calls non-member."""
    from sklearn.svm import SVC

    if len(target_conf) == 0:
        return float("nan")
    x = np.concatenate([member_conf, nonmember_conf]).astype(np.float64).reshape(-1, 1)
    y = np.concatenate([np.ones(len(member_conf)), np.zeros(len(nonmember_conf))])
    clf = SVC(C=3, gamma="auto", kernel="rbf")
    clf.fit(x, y)
    pred = clf.predict(np.asarray(target_conf, dtype=np.float64).reshape(-1, 1))
    return 100.0 * float((pred == 0).mean())


def avg_gap(metrics: dict, reference: dict) -> float:
    return float(np.mean([abs(metrics[k] - reference[k]) for k in GAP_METRICS]))


@dataclass(frozen=True)
class EvalSets:
    """The sets a cell is measured on, resident on the device."""

    retain: DeviceData
    forget: DeviceData
    test: DeviceData  # D_t as used for TA and the MIA shadow non-members
    forget_class_test: DeviceData | None  # class-wise only: test samples of the forgotten class

    @classmethod
    def build(cls, retain: DeviceData, forget: DeviceData, full_test: DeviceData, forget_class: int | None,
              classwise_test: str = "remaining") -> "EvalSets":
        if forget_class is None:
            return cls(retain, forget, full_test, None)
        test = full_test.without_class(forget_class) if classwise_test == "remaining" else full_test
        return cls(retain, forget, test, full_test.of_class(forget_class))


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
