"""Reports over any task's metric set: an ssl block gets its own columns beside an unchanged
classifier block; baseline and compare check what each entry's task has."""

from __future__ import annotations

import copy

from bench.reports import baseline as bl
from bench.reports import compare as cmp
from bench.reports import tolerances as tol
from bench.reports.frame import records_frame
from bench.reports.leaderboard import build_page
from bench.reports.tables import render_csv, render_markdown, summary_table
from test_reports import ENV, grid

SSL_METRICS = ["probe_acc", "knn_acc", "encodermi_acc", "svc_mia"]
SSL_RETRAIN = {"probe_acc": 60.0, "knn_acc": 55.0, "encodermi_acc": 50.0, "svc_mia": 40.0}


def ssl_record(method: str, values: dict, seed: int = 0) -> dict:
    cell = {"method": method, "dataset": "cifar10", "model": "simclr-resnet18", "scenario": "random20", "seed": seed,
            "profile": "ssl-test"}
    metrics = dict(values, avg_gap=sum(abs(values[k] - SSL_RETRAIN[k]) for k in SSL_METRICS) / 4)
    return {"schema": 1, "cell_id": f"{method}__cifar10__simclr-resnet18__random20__seed{seed}", "task": "ssl",
            "gap_metrics": SSL_METRICS, "cell": cell, "config_hash": "s", "status": "ok", "metrics": metrics,
            "retrain_reference": SSL_RETRAIN, "cost": {"pflops": 2.0}, "timing": {"unlearn_seconds": 5.0, "device": "cpu"},
            "environment": ENV, "code": {"commit": "abc1234567", "dirty": False}, "created": "2026-01-02T03:04:05+00:00"}


def ssl_records() -> list[dict]:
    return [ssl_record("Retrain", SSL_RETRAIN),
            ssl_record("Original", {"probe_acc": 70.0, "knn_acc": 65.0, "encodermi_acc": 87.0, "svc_mia": 20.0}),
            ssl_record("GP", {"probe_acc": 58.0, "knn_acc": 53.0, "encodermi_acc": 51.0, "svc_mia": 44.0})]


def test_an_ssl_block_has_its_metrics_and_the_classifier_block_is_unchanged():
    classify = grid(seeds=(0,))
    alone = render_markdown(summary_table(records_frame(classify)))
    mixed = render_markdown(summary_table(records_frame(classify + ssl_records())))
    note, classify_block = alone.split("\n", 1)
    assert mixed.startswith(note) and classify_block in mixed  # the classifier block, byte for byte
    ssl_part = mixed.replace(classify_block, "")
    assert "| Method | probe_acc | knn_acc | encodermi_acc | svc_mia | Avg-Gap (per seed) | Avg-Gap (of means) | PFLOPs | Seconds |" in ssl_part
    # GP: |58-60|, |53-55|, |51-50|, |44-40| -> Avg-Gap 2.25, bold as the only unlearning method
    assert "| GP | 58.00 (2.00) | 53.00 (2.00) | 51.00 (1.00) | 44.00 (4.00) | **2.25** | **2.25** | 2.00 | 5.0 |" in ssl_part
    assert "| RA |" not in ssl_part
    # a classifier-only summary has exactly the columns it had before tasks
    assert "gap_metrics" not in render_csv(summary_table(records_frame(classify))).splitlines()[0]


def test_leaderboard_names_the_tasks_metrics():
    records = ssl_records()
    page = build_page(__import__("pathlib").Path("x"), records, [])
    text = " ".join(str(getattr(b, "text", "")) for b in page.blocks)
    assert "over probe_acc, knn_acc, encodermi_acc, svc_mia" in text


def test_baseline_and_compare_check_what_an_ssl_entry_has():
    base = bl.summarise(ssl_records() + grid(seeds=(0,)), "base")
    gp = next(e for e in base["entries"] if e["method"] == "GP")
    assert set(gp["values"]) == {"avg_gap", "pflops", "seconds"}
    bl._check_entry(gp, "test")  # an ssl entry without RA/TA is well formed
    same = cmp.compare(copy.deepcopy(base), base, tol.resolve())
    assert same.ok
    worse = ssl_records()
    worse[2] = ssl_record("GP", {"probe_acc": 40.0, "knn_acc": 53.0, "encodermi_acc": 51.0, "svc_mia": 44.0})
    result = cmp.compare(bl.summarise(worse + grid(seeds=(0,)), "now"), base, tol.resolve())
    assert [f.check for f in result.failures] == ["avg_gap (must not rise)"]
