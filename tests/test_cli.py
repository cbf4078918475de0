"""The command line: end to end on a tiny profile, failures recorded, usage errors in one line."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from bench.cli import main
from bench.method import METHODS, MethodInfo
from tiny_profile import TINY as TINY_PROFILE  # tests/ is on sys.path under pytest


@pytest.fixture
def profile_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PROFILE)
    return path


def run(*args):
    return main(["run", *map(str, args), "--no-progress"])


def test_run_end_to_end_writes_records_and_tables(profile_file, tmp_path, cache_dir, capsys):
    results = tmp_path / "results"
    assert run("--profile", profile_file, "--results", results, "--cache-dir", cache_dir) == 0
    out = capsys.readouterr().out
    assert "| Retrain |" in out and "| FT |" in out
    records = [json.loads(p.read_text()) for p in (results / "records").glob("*.json")]
    assert sorted(r["cell"]["method"] for r in records) == ["FT", "Original", "Retrain"]
    ft = next(r for r in records if r["cell"]["method"] == "FT")
    assert ft["status"] == "ok" and ft["params"]["epochs"] == 1
    assert ft["split"]["n_forget"] == 144 and len(ft["split"]["forget_hash"]) == 16
    assert ft["environment"]["torch"] == torch.__version__ and "commit" in ft["code"]
    assert (results / "summary.csv").is_file() and (results / "summary.md").is_file()

    ids = sorted(p.stem for p in (results / "records").glob("*.json"))
    assert run("--profile", profile_file, "--results", results, "--cache-dir", cache_dir, "--dry-run") == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [f"done  {i}" for i in ["Retrain__digits__small_cnn__random10__seed0",
                                                                "Original__digits__small_cnn__random10__seed0",
                                                                "FT__digits__small_cnn__random10__seed0"]]
    assert sorted(ids) == sorted(line[6:] for line in captured.out.splitlines())
    assert "3 of 3 cells done" in captured.err
    assert run("--profile", profile_file, "--results", results, "--cache-dir", cache_dir, "--dry-run",
               "--set", "FT.epochs=2") == 0  # FT's settings changed: it would run again, the rest not
    assert capsys.readouterr().out.splitlines()[-1] == "run   FT__digits__small_cnn__random10__seed0"


def test_a_dry_run_trains_and_writes_nothing(profile_file, tmp_path, capsys):
    results, cache = tmp_path / "fresh", tmp_path / "cache"
    assert run("--profile", profile_file, "--results", results, "--cache-dir", cache, "--dry-run") == 0
    assert [line[:4] for line in capsys.readouterr().out.splitlines()] == ["run "] * 3
    assert not results.exists()  # no record, no table
    assert not any(p.is_file() for p in cache.rglob("*"))  # no checkpoint, not even the decoded data


@dataclasses.dataclass(frozen=True)
class Crashes:
    """A method that raises."""

    def run(self, ctx):
        raise RuntimeError("boom")


@dataclasses.dataclass(frozen=True)
class Diverges:
    """A method whose weights become NaN."""

    def run(self, ctx):
        with torch.no_grad():
            next(ctx.model.parameters()).fill_(float("nan"))


def test_failing_cells_are_recorded_and_the_grid_goes_on(profile_file, tmp_path, cache_dir, monkeypatch, capsys):
    for name, cls in (("Crashes", Crashes), ("Diverges", Diverges)):
        monkeypatch.setitem(METHODS._entries, name, MethodInfo(name, cls, cls.__doc__, ("random", "class")))
    results = tmp_path / "results"
    code = run("--profile", profile_file, "--results", results, "--cache-dir", cache_dir, "--methods", "Crashes,FT,Diverges")
    assert code == 1
    err = capsys.readouterr().err
    assert "2 of 4 cells failed" in err
    records = {p.name.split("__")[0]: json.loads(p.read_text()) for p in (results / "records").glob("*.json")}
    assert records["Crashes"]["status"] == "failed" and "RuntimeError: boom" in records["Crashes"]["error"]
    assert records["Diverges"]["status"] == "failed" and "diverged" in records["Diverges"]["error"]
    assert records["FT"]["status"] == "ok" and records["Retrain"]["status"] == "ok"


@pytest.mark.parametrize("args,words", [
    (["run", "--methods", "FTT"], "unknown method 'FTT' (did you mean FT"),
    (["run", "--profile", "nope"], "unknown profile 'nope'"),
    (["run", "--seeds", "a,b"], "--seeds takes integers"),
    (["run", "--scenarios", "random200"], "forget percentage"),
    (["run", "--set", "FT.epoch=3"], "FT has no hyperparameter 'epoch'"),
    (["run", "--set", "FT.epochs=-1"], "below the minimum"),
    (["run", "--set", "FT"], "--set takes METHOD.key=value"),
    (["run", "--set", "Nope.lr=1"], "unknown method 'Nope'"),
    (["run", "--device", "cuda"], "no CUDA device"),
    (["run", "--bogus"], "unrecognized arguments"),
    (["table", "--results", "/nonexistent"], "has no records/ folder"),
    (["perf", "--models", "resnet99"], "unknown model"),
])
def test_usage_errors_are_one_line_with_exit_status_2(args, words, capsys):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and words in err, err


def test_missing_data_is_a_usage_error(tmp_path, capsys, monkeypatch):
    from bench.data import catalog

    monkeypatch.setattr(catalog, "DEBIAN_FASHION_MNIST", tmp_path / "nowhere")
    code = main(["run", "--profile", "fashion", "--data-root", str(tmp_path), "--offline", "--results", str(tmp_path / "r")])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fashion-mnist: not found" in err


def test_list_shows_methods_with_hyperparameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "Retrain" in out and "epochs: int = 10" in out and "cifar10" in out and "quick" in out


def test_perf_per_method_compares_time_with_counted_flops(profile_file, cache_dir, capsys):
    code = main(["perf", "--methods", "FT,Original", "--profile", str(profile_file), "--steps", "2",
                 "--cache-dir", str(cache_dir)])
    assert code == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| FT |")]
    assert len(rows) == 1 and "Original" not in out  # Original does nothing, so it is not timed
    pflops, seconds, predicted, slowdown = (float(v.split()[0]) for v in rows[0].split("|")[4:8])
    assert pflops > 0 and seconds > 0 and predicted > 0
    assert slowdown == pytest.approx(seconds / predicted, rel=0.05)


def test_perf_engine_against_plain_loop(capsys):
    assert main(["perf", "--models", "small_cnn", "--batch-sizes", "64", "--steps", "2"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| small_cnn"))
    plain, engine = (float(v.replace(",", "")) for v in row.split("|")[5:7])
    assert plain > 0 and engine > 0
