"""Reports from records: tables, leaderboard, plots, embeddings, and the regression check.

Most tests build record dicts directly (records are the reports' only input); one runs
real tiny cells, plants a regression in a real record, and checks that `compare`
fails on it and passes on a faithful rerun.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench import atomic
from bench.cli import main
from bench.errors import ConfigError
from bench.reports import baseline as bl
from bench.reports import compare as cmp
from bench.reports import tolerances as tol
from bench.reports.frame import records_frame
from bench.reports.leaderboard import block_ranking, write_leaderboard
from bench.reports.stats import bootstrap_interval
from bench.reports.tables import render_latex, render_markdown, summary_table, write_summary

ENV = {"python": "3.11", "torch": "2.14.1", "platform": "Linux", "cpu_threads": 2, "cpu_model": "Test CPU",
       "device_type": "cpu", "device_name": "cpu"}
RETRAIN = {"RA": 100.0, "UA": 5.0, "TA": 95.0, "MIA": 10.0}


def make_record(method: str, scenario: str = "random10", seed: int = 0, *, RA: float = 99.0, UA: float = 4.0,
                TA: float = 94.0, MIA: float = 9.0, ref: dict | None = None, pflops: float = 1.0,
                seconds: float = 10.0, env: dict | None = None, status: str = "ok") -> dict:
    """A record shaped like `bench.cell.run_cell`'s (only the fields reports read)."""
    ref = dict(ref or RETRAIN)
    cell = {"method": method, "dataset": "digits", "model": "small_cnn", "scenario": scenario, "seed": seed,
            "profile": "test"}
    cell_id = f"{method}__digits__small_cnn__{scenario}__seed{seed}"
    if status != "ok":
        return {"schema": 1, "cell_id": cell_id, "cell": cell, "status": "failed", "error": "RuntimeError: boom",
                "environment": env or ENV, "code": {"commit": "abc", "dirty": False}}
    metrics = {"RA": RA, "UA": UA, "TA": TA, "MIA": MIA}
    metrics["avg_gap"] = float(np.mean([abs(metrics[k] - ref[k]) for k in RETRAIN]))
    return {
        "schema": 1, "cell_id": cell_id, "cell": cell, "config_hash": f"h{seed}", "status": "ok",
        "metrics": metrics, "retrain_reference": ref,
        "cost": {"pflops": pflops}, "timing": {"unlearn_seconds": seconds, "device": "cpu (2 threads)"},
        "environment": env or ENV, "code": {"commit": "abc1234567", "dirty": False},
        "created": "2026-01-02T03:04:05+00:00",
    }


def grid(seeds=(0, 1), scenarios=("random10",)) -> list[dict]:
    """Retrain, Original and two methods (A better than B) over seeds."""
    out = []
    for scenario in scenarios:
        for s in seeds:
            out += [
                make_record("Retrain", scenario, s, **RETRAIN, pflops=20.0, seconds=100.0),
                make_record("Original", scenario, s, RA=100.0, UA=0.0, TA=95.5, MIA=1.0, pflops=0.0, seconds=0.0),
                make_record("MethA", scenario, s, RA=99.5 + 0.1 * s, UA=4.5, TA=94.8, MIA=9.5 - s, pflops=5.0),
                make_record("MethB", scenario, s, RA=98.0, UA=2.0, TA=93.0 + s, MIA=6.0, pflops=2.0),
            ]
    return out


def write_records(folder: Path, records: list[dict]) -> Path:
    for r in records:
        atomic.write_json(folder / "records" / f"{r['cell_id']}.json", r)
    return folder


# ---------------------------------------------------------------------- tables


def test_table_gaps_come_from_each_records_retrain_reference_with_std_over_seeds():
    summary = summary_table(records_frame(grid()))
    a = summary.set_index("method").loc["MethA"]
    assert a["RA_mean"] == pytest.approx(99.55)
    assert a["RA_std"] == pytest.approx(np.std([99.5, 99.6], ddof=1))
    assert a["MIA_gap_mean"] == pytest.approx(np.mean([0.5, 1.5]))  # |9.5 - 10|, |8.5 - 10|
    assert a["seeds"] == 2
    assert list(summary["method"][:2]) == ["Retrain", "Original"]  # references first


def test_best_avg_gap_is_the_lowest_unlearning_method_never_a_reference():
    records = grid()
    # Original closer to Retrain than any method: still not "best"
    records = [r for r in records if r["cell"]["method"] != "Original"] + [
        make_record("Original", "random10", s, **{**RETRAIN, "TA": 94.9}, pflops=0.0) for s in (0, 1)]
    summary = summary_table(records_frame(records))
    assert summary.loc[summary["best"], "method"].tolist() == ["MethA"]
    md = render_markdown(summary)
    line = next(l for l in md.splitlines() if l.startswith("| MethA"))
    assert "**" in line and "**" not in next(l for l in md.splitlines() if l.startswith("| Original"))


def test_one_seed_shows_no_spread_and_the_gap_beside_each_metric():
    md = render_markdown(summary_table(records_frame(grid(seeds=(0,)))))
    row = next(l for l in md.splitlines() if l.startswith("| MethB"))
    assert "±" not in row
    assert "98.00 (2.00)" in row  # RA 98 with |98 - 100| beside it


def test_write_summary_writes_markdown_csv_and_latex(tmp_path):
    records = grid() + [make_record("l1_sparse", "random10", s, pflops=3.0) for s in (0, 1)]
    markdown, csv_path, md_path = write_summary(records, tmp_path)
    assert md_path.read_text() == markdown
    csv = pd.read_csv(csv_path)
    assert {"RA_gap_mean", "avg_gap_std", "pflops_mean", "seconds_mean", "best"} <= set(csv.columns)
    tex = (tmp_path / "summary.tex").read_text()
    assert r"l1\_sparse" in tex and r"\textbf{" in tex and r"$\pm$" in tex
    assert tex.count(r"\begin{tabular}") == 1


def test_class_wise_tables_add_the_forgotten_class_accuracy():
    records = []
    for r in grid(scenarios=("class9",)):
        r["metrics"]["forget_class_TA"] = 0.0 if r["cell"]["method"] == "Retrain" else 50.0
        r["retrain_reference"]["forget_class_TA"] = 0.0
        records.append(r)
    md = render_markdown(summary_table(records_frame(records)))
    assert "Forget-class TA" in md and "50.00 ± 0.00 (50.00)" in md
    assert "Forget-class TA" in render_latex(summary_table(records_frame(records)))


# ---------------------------------------------------------------------- statistics and leaderboard


def test_bootstrap_interval_needs_two_seeds_and_brackets_the_mean():
    assert bootstrap_interval([1.0]) is None
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    values = [1.0, 2.0, 4.0, 3.0]
    low, high = bootstrap_interval(values)
    assert low < np.mean(values) < high
    assert bootstrap_interval(values) == (low, high)  # fixed resampling seed: pages are reproducible


def test_ranking_orders_by_avg_gap_and_leaves_retrain_out():
    ranking = block_ranking(records_frame(grid(seeds=(0, 1, 2))))
    assert "Retrain" not in set(ranking["method"])
    assert list(ranking["avg_gap"]) == sorted(ranking["avg_gap"])
    assert ranking.iloc[0]["method"] == "MethA"
    assert ranking.set_index("method").loc["MethA", "share"] == pytest.approx(25.0)  # 5 of Retrain's 20 PFLOPs


def test_leaderboard_page_and_figures(tmp_path):
    records = grid(scenarios=("random10", "class9")) + [make_record("MethC", "random10", 0)]
    records.append(make_record("MethD", "random10", 0, status="failed"))
    folder = write_records(tmp_path / "test", records)
    md_path, html_path, figures = write_leaderboard(folder)
    md = md_path.read_text()
    assert "## Overall" in md and "MethC is not in the overall ranking" in md
    assert "– (1 seed)" in md  # MethC ran one seed: no interval invented
    assert "MethD" in md and "boom" in md  # the failed cell is reported, not hidden
    overall = md.split("## Overall")[1].split("## Ranking")[0]
    assert overall.index("MethA") < overall.index("MethB")
    html = html_path.read_text()
    assert html.count("data:image/png;base64,") == 2 and 'src="http' not in html
    assert sorted(p.name for p in figures) == ["metric_gaps.png", "metric_gaps.svg", "tradeoff.png", "tradeoff.svg"]
    assert all(p.stat().st_size > 5000 for p in figures)


def test_leaderboard_command_finds_one_page_per_profile_folder(tmp_path, capsys):
    write_records(tmp_path / "results" / "p1", grid(seeds=(0,)))
    write_records(tmp_path / "results" / "p2", grid(seeds=(0,)))
    assert main(["leaderboard", "--results", str(tmp_path / "results"), "--no-plots"]) == 0
    assert (tmp_path / "results" / "p1" / "leaderboard.html").is_file()
    assert (tmp_path / "results" / "p2" / "leaderboard.md").is_file()


# ---------------------------------------------------------------------- tolerances


@pytest.mark.parametrize("text,expected", [
    ("TA:0.5", ("TA", "abs", 0.5, None)),
    ("seconds:20%", ("seconds", "pct", 20.0, None)),
    ("avg_gap:2sd", ("avg_gap", "sd", 2.0, None)),
    ("avg_gap:1.5sd:0.25", ("avg_gap", "sd", 1.5, 0.25)),
    ("UA:1", ("UA_gap", "abs", 1.0, None)),  # UA is judged by its gap to Retrain
])
def test_tolerance_parsing(text, expected):
    t = tol.parse(text)
    assert (t.quantity, t.kind, t.amount, t.floor) == expected


@pytest.mark.parametrize("text", ["TA", "TA:", "TA:abc", "TA:-1", "TA:0.5:1", "nope:1", "avg_gap:2sd:x", "TA:1:2:3"])
def test_bad_tolerances_are_usage_errors(text):
    with pytest.raises(ConfigError):
        tol.parse(text)


def test_tolerance_amounts_and_default_floors():
    t = tol.resolve(["avg_gap:3sd"])["avg_gap"]
    default_floor = tol.parse(next(d for d in tol.DEFAULTS if d.startswith("avg_gap"))).floor
    assert t.floor == default_floor  # an override without a floor keeps the default floor
    assert t.allowed(5.0, math.nan) == default_floor  # one seed: no spread, the floor alone
    assert t.allowed(5.0, 10.0) == 30.0
    assert tol.parse("seconds:20%:1").allowed(100.0, math.nan) == 20.0
    assert tol.parse("seconds:20%:1").allowed(2.0, math.nan) == 1.0


# ---------------------------------------------------------------------- compare (constructed records)


def run_compare(now_records, base_records, overrides=None, skip_timing=False) -> cmp.Comparison:
    now, base = bl.summarise(now_records, "now"), bl.summarise(base_records, "base")
    return cmp.compare(now, base, tol.resolve(overrides), skip_timing)


def worsen(records, method, **changes) -> list[dict]:
    out = copy.deepcopy(records)
    for r in out:
        if r["cell"]["method"] == method and r["status"] == "ok":
            r["metrics"].update(changes)
            r["metrics"]["avg_gap"] = float(np.mean([abs(r["metrics"][k] - r["retrain_reference"][k]) for k in RETRAIN]))
    return out


def test_identical_results_pass():
    result = run_compare(grid(), grid())
    assert result.ok and result.checked == 4 * len(tol.RULES)


def test_a_changed_configuration_hash_is_a_note_naming_the_cells_not_a_failure():
    assert run_compare(grid(), grid()).notes == []
    now = grid()
    for r in now:
        if r["cell"]["method"] == "MethB" and r["cell"]["seed"] == 1:
            r["config_hash"] = "made-by-other-code"
    result = run_compare(now, grid())
    assert result.ok
    assert result.notes == ["configuration hash (hyperparameters, recipe or code fingerprint) differs from the "
                            "baseline's: digits/small_cnn/random10 MethB"]


def test_planted_regressions_are_all_collected():
    now = worsen(grid(), "MethA", TA=90.0)  # accuracy falls by 4.8 points
    now = worsen(now, "MethB", UA=15.0)  # UA moves away from Retrain's 5
    result = run_compare(now, grid())
    checks = {(f.cell.split()[-1], f.check.split()[0]) for f in result.failures}
    assert ("MethA", "TA") in checks and ("MethB", "UA_gap") in checks
    assert ("MethA", "avg_gap") in checks and ("MethB", "avg_gap") in checks
    text = cmp.render(result, "now", "base")
    assert "REGRESSION" in text and all(h in text for h in cmp.HEADERS)


def test_improvements_pass_and_ua_is_judged_by_its_gap():
    now = worsen(grid(), "MethB", TA=96.0, UA=5.0)  # TA up, UA onto Retrain's
    assert run_compare(now, grid()).ok
    lower_ua = worsen(grid(), "MethA", UA=3.5, MIA=9.5)  # UA falls, but only 1.5 from Retrain (was 0.5)
    assert run_compare(lower_ua, grid(), ["UA_gap:0.5"]).failures[0].check.startswith("UA_gap")


def test_new_methods_are_listed_not_failed_and_missing_ones_fail():
    now = [r for r in grid() if r["cell"]["method"] != "MethB"] + [make_record("MethNew", "random10", s) for s in (0, 1)]
    result = run_compare(now, grid())
    assert result.new == ["MethNew: digits/small_cnn/random10"]
    assert [(f.cell.split()[-1], f.check, f.now) for f in result.failures] == [("MethB", "present", "missing")]


def test_failed_cells_and_missing_seeds_fail():
    now = [r for r in grid() if not (r["cell"]["method"] == "MethA" and r["cell"]["seed"] == 1)]
    now.append(make_record("MethA", "random10", 1, status="failed"))
    now = [r for r in now if not (r["cell"]["method"] == "MethB" and r["cell"]["seed"] == 1)]
    failures = {(f.cell.split()[-1], f.check.split()[0]) for f in run_compare(now, grid()).failures}
    assert failures == {("MethA", "run"), ("MethB", "seeds")}


def test_timing_is_checked_on_the_same_machine_and_skipped_on_another():
    slower = copy.deepcopy(grid())
    for r in slower:
        r["timing"]["unlearn_seconds"] *= 3
    same = run_compare(slower, grid())
    assert {f.check.split()[0] for f in same.failures} == {"seconds"}
    for r in slower:
        r["environment"] = {**ENV, "cpu_model": "Another CPU"}
    other = run_compare(slower, grid())
    assert other.ok and any("timing checks skipped" in w for w in other.warnings)
    assert run_compare(slower, grid(), skip_timing=True).ok


def test_more_compute_fails():
    more = copy.deepcopy(grid())
    for r in more:
        r["cost"]["pflops"] *= 1.5
    assert {f.check.split()[0] for f in run_compare(more, grid()).failures} == {"pflops"}


def test_measured_seed_spread_sets_the_sd_tolerance_of_a_one_seed_baseline(tmp_path, capsys):
    """A one-seed baseline has no std of its own: `--spread-from` stores the std measured over
    other seeds, and `TA:2sd` then allows exactly 2 x that std (here the floors are 0)."""
    base = write_records(tmp_path / "base", grid(seeds=(0,)))
    # MethB's TA is 93 + seed: over seeds 0, 1, 2 its std is exactly 1.0
    spread = write_records(tmp_path / "spread", grid(seeds=(1, 2)))
    assert main(["baseline", "--results", str(base), "--spread-from", str(spread)]) == 0
    stored = json.loads((base / "baseline.json").read_text())
    meth_b = next(e for e in stored["entries"] if e["method"] == "MethB")
    assert meth_b["spread"]["seeds"] == [0, 1, 2] and meth_b["spread"]["std"]["TA"] == pytest.approx(1.0)
    assert meth_b["spread"]["std"]["pflops"] == 0.0
    stored_base = bl.read(base / "baseline.json")
    rules = ["TA:2sd:0", "avg_gap:100", "RA:100", "UA_gap:100", "MIA_gap:100"]
    within = bl.summarise(worsen(grid(seeds=(0,)), "MethB", TA=91.1), "now")  # fell 1.9 < 2 x 1.0
    assert cmp.compare(within, stored_base, tol.resolve(rules), skip_timing=True).ok
    beyond = bl.summarise(worsen(grid(seeds=(0,)), "MethB", TA=90.9), "now")  # fell 2.1 > 2 x 1.0
    failures = cmp.compare(beyond, stored_base, tol.resolve(rules), skip_timing=True).failures
    assert [(f.cell.split()[-1], f.check) for f in failures] == [("MethB", "TA (must not fall)")]
    assert "2sd of 1" in failures[0].tolerance
    # without the stored spread the same baseline (one seed) falls back to the floor alone
    unspread = bl.summarise(grid(seeds=(0,)), "base")
    assert not cmp.compare(within, unspread, tol.resolve(rules), skip_timing=True).ok


# ---------------------------------------------------------------------- CLI: exit codes and one-line errors


def test_cli_baseline_then_compare_exit_codes(tmp_path, capsys):
    base = write_records(tmp_path / "base", grid())
    assert main(["baseline", "--results", str(base)]) == 0
    stored = json.loads((base / "baseline.json").read_text())
    assert stored["kind"] == bl.KIND and len(stored["entries"]) == 4
    faithful = write_records(tmp_path / "faithful", grid())
    assert main(["compare", str(faithful), "--against", str(base / "baseline.json")]) == 0
    worse = write_records(tmp_path / "worse", worsen(grid(), "MethA", TA=80.0))
    capsys.readouterr()
    assert main(["compare", str(worse), "--against", str(base / "baseline.json")]) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "MethA" in out and "TA (must not fall)" in out


@pytest.mark.parametrize("argv_tail,setup", [
    (["compare", "{tmp}/nowhere", "--against", "{tmp}/base.json"], None),
    (["compare", "{tmp}/res", "--against", "{tmp}/missing.json"], "results"),
    (["compare", "{tmp}/res", "--against", "{tmp}/corrupt.json"], "corrupt"),
    (["compare", "{tmp}/res", "--against", "{tmp}/notbaseline.json"], "notbaseline"),
    (["compare", "{tmp}/res", "--against", "{tmp}/res", "--tolerance", "TA:lots"], "results"),
    (["baseline", "--results", "{tmp}/res"], "failed"),
    (["table", "--results", "{tmp}/empty"], None),
    (["leaderboard", "--results", "{tmp}/empty2"], "emptydir"),
    (["embed", "--method", "FT", "--scenario", "random10", "--view", "umap"], None),
])
def test_usage_errors_are_one_line_exit_2(tmp_path, capsys, argv_tail, setup):
    if setup in ("results", "corrupt", "notbaseline"):
        write_records(tmp_path / "res", grid(seeds=(0,)))
    if setup == "corrupt":
        (tmp_path / "corrupt.json").write_text("{not json")
    if setup == "notbaseline":
        (tmp_path / "notbaseline.json").write_text('{"entries": []}')
    if setup == "failed":
        write_records(tmp_path / "res", grid(seeds=(0,)) + [make_record("MethZ", status="failed")])
    if setup == "emptydir":
        (tmp_path / "empty2").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv_tail]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and "Traceback" not in err


# ---------------------------------------------------------------------- real records from tiny runs


# one-epoch Original/Retrain: real records, trained once per session (the checkpoint cache is shared)
ONE_EPOCH = {"epochs": 1, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 128,
             "milestones": [0.5, 0.75], "gamma": 0.1}


def _run_tiny(tiny_spec, folder: Path) -> Path:
    from bench.cell import run_cell
    from bench.records import RecordStore

    store = RecordStore(folder)
    for method, params in (("Retrain", {}), ("Original", {}), ("FT", {"epochs": 2})):
        store.write(run_cell(tiny_spec(method, "random10", params=params, train=ONE_EPOCH)))
    return folder


def test_real_records_a_planted_regression_fails_and_a_faithful_rerun_passes(tiny_spec, tmp_path, capsys):
    first = _run_tiny(tiny_spec, tmp_path / "first")
    assert main(["table", "--results", str(first)]) == 0
    assert "FT" in (first / "summary.md").read_text()
    assert main(["baseline", "--results", str(first)]) == 0
    rerun = _run_tiny(tiny_spec, tmp_path / "rerun")
    # wall-clock on a shared CPU is not a test subject: the timing rule is tested on constructed records
    assert main(["compare", str(rerun), "--against", str(first / "baseline.json"), "--skip-timing"]) == 0

    planted = tmp_path / "planted"
    ft_path = rerun / "records" / "FT__digits__small_cnn__random10__seed0.json"
    record = json.loads(ft_path.read_text())
    ref = record["retrain_reference"]
    record["metrics"]["TA"] -= 3.0
    record["metrics"]["avg_gap"] = float(np.mean([abs(record["metrics"][k] - ref[k]) for k in RETRAIN]))
    for path in (rerun / "records").glob("*.json"):
        atomic.write_json(planted / "records" / path.name, record if path == ft_path else json.loads(path.read_text()))
    capsys.readouterr()
    assert main(["compare", str(planted), "--against", str(first / "baseline.json"), "--skip-timing"]) == 1
    out = capsys.readouterr().out
    assert "FT" in out and "TA (must not fall)" in out


def test_embedding_pictures_of_a_real_cell(tiny_spec, tmp_path):
    from bench.reports.embeddings import embed, poincare_2d

    paths = embed(tiny_spec("FT", "class3", params={"epochs": 1}, train=ONE_EPOCH), tmp_path,
                  [str(i) for i in range(10)], max_points=150, tsne_iterations=250)
    assert sorted(p.name for p in paths) == sorted(f"embed_FT_class3_s0_{v}.{e}" for v in ("tsne", "poincare")
                                                   for e in ("png", "svg"))
    assert all(p.stat().st_size > 5000 for p in paths)
    x = np.random.default_rng(0).normal(size=(200, 16))
    for c in (1.0, 2.0):
        disk = poincare_2d(x, c)
        assert disk.shape == (200, 2) and np.linalg.norm(disk, axis=1).max() < 1 / np.sqrt(c)


def test_embed_command_draws_the_method_asked_for(tmp_path, cache_dir, capsys):
    profile = tmp_path / "tiny.toml"
    profile.write_text('dataset = "digits"\nmodel = "small_cnn"\ndevice = "cpu"\ndownload = false\n'
                       '[train]\nepochs = 1\nbatch_size = 128\n')
    code = main(["embed", "--profile", str(profile), "--method", "FT", "--scenario", "random10", "--view", "poincare",
                 "--max-points", "60", "--set", "FT.epochs=1", "--cache-dir", str(cache_dir), "--out", str(tmp_path / "fig")])
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == ["embed_FT_random10_s0_poincare.png",
                                                                     "embed_FT_random10_s0_poincare.svg"]


def test_pflops_keep_three_significant_figures_below_one():
    from bench.reports.tables import fmt_pflops

    assert [fmt_pflops(v) for v in (27.4449, 0.0115, 0.5, 3.54e-4, 0.0)] == ["27.44", "0.0115", "0.5", "3.54e-04", "0"]


# ---------------------------------------------------------------------- issue 11: defaults, determinism, numerics


def test_leaderboard_files_are_byte_identical_when_the_records_are(tmp_path):
    folder = write_records(tmp_path / "test", grid(seeds=(0, 1)))
    write_leaderboard(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "records" not in p.parts)
    first = {p: p.read_bytes() for p in files}
    assert {p.suffix for p in files} == {".md", ".html", ".png", ".svg"}
    write_leaderboard(folder)
    assert {p: p.read_bytes() for p in files} == first  # no date, no random SVG ids, no version
    svg = (folder / "figures" / "tradeoff.svg").read_text()
    assert "<dc:date>" not in svg and "matplotlib.org" not in svg


def test_leaderboard_defaults_to_the_users_own_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_records(tmp_path / "results" / "quick", grid(seeds=(0,)))  # published results: untouched
    write_records(tmp_path / "results" / "local" / "quick", grid(seeds=(0,)))  # `bench run`'s output
    assert main(["leaderboard", "--no-plots"]) == 0
    assert (tmp_path / "results" / "local" / "quick" / "leaderboard.md").is_file()
    assert not (tmp_path / "results" / "quick" / "leaderboard.md").exists()


def test_leaderboard_default_without_a_run_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["leaderboard"]) == 2
    err = capsys.readouterr().err
    assert "results/local" in err and "bench run" in err and len(err.strip().splitlines()) == 1


PORTABLE_ENV = {**ENV, "cpu_capability": "DEFAULT",
                "numerics_pins": {"ATEN_CPU_CAPABILITY": "default", "ONEDNN_MAX_CPU_ISA": "SSE41", "MKL_CBWR": "COMPATIBLE"}}
NATIVE_ENV = {**ENV, "cpu_capability": "AVX512", "numerics_pins": {}}


def test_compare_refuses_results_made_with_other_cpu_kernels(tmp_path, capsys):
    base = write_records(tmp_path / "base", [dict(r, environment=PORTABLE_ENV) for r in grid(seeds=(0,))])
    assert main(["baseline", "--results", str(base)]) == 0
    moved = [dict(r, environment=NATIVE_ENV) for r in grid(seeds=(0,))]
    moved[2]["metrics"]["TA"] -= 5  # what other kernels do to a single-seed number: not a regression
    now = write_records(tmp_path / "now", moved)
    capsys.readouterr()
    assert main(["compare", str(now), "--against", str(base / "baseline.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other CPU kernels" in err and "cpu_capability=AVX512; no pins" in err
    same = write_records(tmp_path / "same", [dict(r, environment=PORTABLE_ENV) for r in grid(seeds=(0,))])
    assert main(["compare", str(same), "--against", str(base / "baseline.json")]) == 0
    assert cmp.numerics_mismatch(bl.from_results(same), bl.read(base / "baseline.json")) is None
    # records without kernel information (older ones, or GPU runs) are compared as before
    assert cmp.numerics_mismatch(bl.from_results(write_records(tmp_path / "old", grid(seeds=(0,)))),
                                 bl.read(base / "baseline.json")) is None
