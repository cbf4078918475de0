"""`bench audit`: the per-example audit of a results folder, from stored outputs only.

For every (dataset, model, scenario, seed) with at least 3 Retrain replicas whose outputs
are stored, and every method with as many replicas: the challenge's forgetting quality and
final score, the U-LiRA attack, KLoM on D_f and on the stored D_r / D_t samples, beside the
replicas' mean RA / TA / SVC-MIA / Avg-Gap and Retrain's own noise floor (the Avg-Gap of
Retrain replicas 1..K-1 to replica 0, which every cell's Avg-Gap is taken against).
Writes audit.md, audit.csv, audit_examples.csv and figures/audit_epsilon.{png,svg}.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench import atomic
from bench.audit import challenge, klom, ulira
from bench.audit.statistics import logit_scaled_confidence
from bench.errors import ConfigError
from bench.outputs import SETS, read_outputs
from bench.profiles import MIN_AUDIT_REPLICAS as MIN_REPLICAS
GROUP = ("dataset", "model", "scenario", "seed")
COLUMNS = [*GROUP, "method", "replicas", "recipe", "RA", "TA", "MIA", "avg_gap", "F", "final_score",
           "ulira_auc", "ulira_tpr_1pct", "ulira_tpr_0.1pct", "klom_forget_mean", "klom_forget_p95",
           "klom_retain_p95", "klom_test_p95", "retrain_noise_avg_gap", "retrain_noise_avg_gap_std"]


@dataclass
class Replicas:
    """One method's replicas on one split: records in replica order and phi per stored set."""

    method: str
    records: list[dict] = field(default_factory=list)
    phi: dict[str, np.ndarray] = field(default_factory=dict)  # set -> [K, n]
    index: dict[str, np.ndarray] = field(default_factory=dict)

    def metric(self, name: str) -> float:
        return float(np.mean([r["metrics"][name] for r in self.records]))


def _recipe(record: dict) -> str:
    t = record["config"]["train"]
    return f"{record['cell'].get('profile', '?')}: {t['epochs']} ep, batch {t['batch_size']}, lr {t['lr']}"


def collect(records: list[dict], records_dir: Path) -> dict[tuple, dict[str, Replicas]]:
    """Groups with enough Retrain replicas -> method -> its replicas' phi (checked to cover the same samples)."""
    by_cell: dict[tuple, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in records:
        if r.get("status") != "ok" or "outputs" not in r:
            continue
        c = r["cell"]
        by_cell[tuple(c[k] for k in GROUP)][c["method"]][int(c.get("replica", 0))] = r
    groups: dict[tuple, dict[str, Replicas]] = {}
    for key, methods in sorted(by_cell.items(), key=lambda kv: str(kv[0])):
        retrain = methods.get("Retrain", {})
        k_ref = _contiguous(retrain)
        if k_ref < MIN_REPLICAS:
            continue
        out: dict[str, Replicas] = {}
        for method, reps in methods.items():
            k = min(_contiguous(reps), k_ref)
            if k < MIN_REPLICAS:
                continue
            item = Replicas(method, [reps[i] for i in range(k)])
            arrays = [read_outputs(records_dir, rec["outputs"]) for rec in item.records]
            for s in SETS:
                item.index[s] = arrays[0][f"{s}_index"]
                if any(not np.array_equal(a[f"{s}_index"], item.index[s]) for a in arrays):
                    raise ConfigError(f"{method} {key}: replicas stored different {s} samples; rerun them with --force")
                item.phi[s] = np.stack([logit_scaled_confidence(a[f"{s}_logits"], a[f"{s}_labels"]) for a in arrays])
            out[method] = item
        for method, item in out.items():  # the comparisons pair each example with Retrain's by position
            for s in SETS:
                if not np.array_equal(item.index[s], out["Retrain"].index[s]):
                    raise ConfigError(f"{method} {key}: its stored {s} samples are not Retrain's; "
                                      f"rerun both with the same [audit] settings (--force)")
        groups[key] = out
    return groups


def _contiguous(reps: dict[int, Any]) -> int:
    """How many replicas 0, 1, 2, ... exist without a gap."""
    k = 0
    while k in reps:
        k += 1
    return k


def _p95(values: np.ndarray) -> float:
    return float(np.percentile(values, 95)) if len(values) else math.nan


def audit_group(key: tuple, methods: dict[str, Replicas], variance: str = "per_example"
                ) -> tuple[list[dict], list[dict]]:
    """(table rows, per-example rows) of one split."""
    ref = methods["Retrain"]
    noise = [r["metrics"]["avg_gap"] for r in ref.records[1:]]
    base = dict(zip(GROUP, key))
    base.update(retrain_noise_avg_gap=float(np.mean(noise)),
                retrain_noise_avg_gap_std=float(np.std(noise, ddof=1)) if len(noise) > 1 else math.nan,
                recipe=_recipe(ref.records[0]))
    rows, examples = [], []
    for name in _ordered(methods):
        item = methods[name]
        k = len(item.records)
        row = {**base, "method": name, "replicas": k, "RA": item.metric("RA"), "TA": item.metric("TA"),
               "MIA": item.metric("MIA"), "avg_gap": item.metric("avg_gap")}
        if name != "Retrain":
            u, r = item.phi["forget"], ref.phi["forget"][:k]
            eps = challenge.epsilons(u, r)
            ra_r = float(np.mean([x["metrics"]["RA"] for x in ref.records[:k]]))
            ta_r = float(np.mean([x["metrics"]["TA"] for x in ref.records[:k]]))
            quality = challenge.forgetting_quality(eps, k)
            attack = ulira.attack(u, r, variance)
            kl = {s: klom.klom(item.phi[s], ref.phi[s][:k]) for s in SETS}
            row.update(F=quality, final_score=challenge.final_score(quality, row["RA"], ra_r, row["TA"], ta_r),
                       ulira_auc=attack["auc"], ulira_tpr_1pct=attack["tpr_at_1pct"],
                       **{"ulira_tpr_0.1pct": attack["tpr_at_0.1pct"]},
                       klom_forget_mean=float(kl["forget"].mean()), klom_forget_p95=_p95(kl["forget"]),
                       klom_retain_p95=_p95(kl["retain"]), klom_test_p95=_p95(kl["test"]))
            per_example = ulira.example_scores(u, r, variance)
            for i, idx in enumerate(item.index["forget"]):
                examples.append({**dict(zip(GROUP, key)), "method": name, "train_index": int(idx),
                                 "epsilon": float(eps[i]), "points": float(challenge.example_points(eps[i:i + 1], k)[0]),
                                 "ulira_score": float(per_example[i]), "klom": float(kl["forget"][i]),
                                 "phi_method_mean": float(u[:, i].mean()), "phi_retrain_mean": float(r[:, i].mean())})
        rows.append(row)
    return rows, examples


def _ordered(methods: dict[str, Replicas]) -> list[str]:
    from bench.reports.frame import method_order

    return method_order(methods)


def run_audit(records: list[dict], records_dir: Path, variance: str = "per_example") -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, examples = [], []
    for key, methods in collect(records, records_dir).items():
        r, e = audit_group(key, methods, variance)
        rows += r
        examples += e
    return pd.DataFrame(rows, columns=COLUMNS), pd.DataFrame(examples)


# ---------------------------------------------------------------------- writing


def _f(value: float, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


NOTE = ("Generated from stored per-example outputs by `python -m bench audit`; do not edit. Per method: K replicas "
        "(method seeds from one Original) against K Retrain replicas (Retrain seeds, same split). RA / TA / MIA "
        "(SVC MIA-efficacy) / Avg-Gap: means over the replicas, Avg-Gap against Retrain replica 0. F: the NeurIPS'23 "
        "challenge's forgetting quality (1 best, 0 worst; with K models per side only epsilons below ceil(log(K-1)) "
        "score); Final: F x RA/RA* x TA/TA*. U-LiRA: held-out (leave one pair out) per-example likelihood-ratio "
        "attack telling the method's models from Retrain's, AUC 0.5 = indistinguishable. KLoM: per-example KL of "
        "margin histograms (method || Retrain), 0 best. See docs/audit.md.")


def render_markdown(table: pd.DataFrame) -> str:
    if table.empty:
        return "_no split has >= 3 Retrain replicas with stored outputs; run `bench run --replicas K` (K >= 3) first_\n"
    parts = [NOTE + "\n"]
    headings = ["Method", "K", "RA", "TA", "MIA (SVC)", "Avg-Gap", "F", "Final", "U-LiRA AUC", "TPR@1%FPR",
                "TPR@0.1%FPR", "KLoM D_f mean", "KLoM D_f P95", "KLoM D_r P95", "KLoM D_t P95"]
    from bench.reports.render import markdown_table

    for key, block in table.groupby(list(GROUP), sort=False):
        first = block.iloc[0]
        parts.append(f"### {' / '.join(str(k) for k in key[:3])}, seed {key[3]}  (replicas: {first['recipe']})\n")
        parts.append(f"Retrain's own noise: Avg-Gap of Retrain replicas 1..K-1 to replica 0 = "
                     f"{_f(first['retrain_noise_avg_gap'], 2)} ± {_f(first['retrain_noise_avg_gap_std'], 2)} "
                     "(a method's Avg-Gap below this floor is indistinguishable from retraining with another seed).\n")
        rows = [[r["method"], str(r["replicas"]), _f(r["RA"], 2), _f(r["TA"], 2), _f(r["MIA"], 2), _f(r["avg_gap"], 2),
                 _f(r["F"]), _f(r["final_score"]), _f(r["ulira_auc"]), _f(r["ulira_tpr_1pct"]),
                 _f(r["ulira_tpr_0.1pct"]), _f(r["klom_forget_mean"]), _f(r["klom_forget_p95"]),
                 _f(r["klom_retain_p95"]), _f(r["klom_test_p95"])] for _, r in block.iterrows()]
        parts.append(markdown_table(headings, rows))
    return "\n".join(parts)


def write_audit(results_dir: Path, variance: str = "per_example", plot_methods: int = 4) -> tuple[pd.DataFrame, list[Path]]:
    """Compute the audit of `results_dir` and write its files; return the table and the paths written."""
    from bench.reports.frame import load_records

    results_dir = Path(results_dir)
    records = load_records(results_dir)
    table, examples = run_audit(records, results_dir / "records", variance)
    written = [results_dir / "audit.md", results_dir / "audit.csv", results_dir / "audit_examples.csv"]
    atomic.write_text(written[0], render_markdown(table))
    atomic.write_text(written[1], table.to_csv(index=False, float_format="%.6g"))
    atomic.write_text(written[2], examples.to_csv(index=False, float_format="%.6g"))
    if not examples.empty:
        from bench.audit.plot import epsilon_figure

        written += epsilon_figure(table, examples, results_dir / "figures", plot_methods)
    return table, written


def read_audit(results_dir: Path) -> pd.DataFrame | None:
    """The audit table `bench audit` last wrote into `results_dir`, if any."""
    path = Path(results_dir) / "audit.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path)
    return None if table.empty else table
