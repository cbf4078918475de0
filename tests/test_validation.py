"""Every value and path a user passes is checked before any work starts: one line on stderr,
exit status 2, and nothing trained, cached or written (issue 11)."""

from __future__ import annotations

import json
import os

import pytest

from bench.cli import main
from tiny_profile import TINY  # tests/ is on sys.path under pytest

UNWRITABLE = "/proc/unlearn-bench-test/out"  # not creatable, even for root


def profile(tmp_path, text: str = TINY, name: str = "tiny.toml"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def bad_profile(tmp_path, old: str | None, new: str) -> str:
    """TINY with `old` replaced by `new`, or with the top-level line `new` added (old None)."""
    if old is None:
        top, _, rest = TINY.partition("[train]")
        text = top + new + "[train]" + rest
    else:
        assert old in TINY
        text = TINY.replace(old, new)
    return profile(tmp_path, text, "bad.toml")


# Each case: (arguments, text the one-line error must contain). {tmp} is the test's folder,
# {file} an existing plain file, {tiny} a valid tiny profile.
CASES = [
    # hyperparameters: non-finite numbers would wreck the run and its record
    (["run", "--profile", "{tiny}", "--set", "FT.lr=nan"], "FT.lr: nan is not a finite number"),
    (["run", "--profile", "{tiny}", "--set", "FT.lr=inf"], "FT.lr: inf is not a finite number"),
    (["run", "--profile", "{tiny}", "--set", "FT.lr=-inf"], "FT.lr: -inf is not a finite number"),
    (["run", "--profile", "{tiny}", "--set", "FT.epochs=1.5"], "FT.epochs: expected int"),
    (["run", "--profile", "{tiny}", "--methods", "FTT"], "unknown method 'FTT'"),
    (["run", "--profile", "{tiny}", "--methods", "Z*"], "unknown method 'Z*'"),
    # folders the run writes into or reads from
    (["run", "--profile", "{tiny}", "--results", "{file}"], "--results {file} is a file"),
    (["run", "--profile", "{tiny}", "--results", UNWRITABLE], f"--results {UNWRITABLE} is not a folder this user can write"),
    (["run", "--profile", "{tiny}", "--cache-dir", "{file}"], "--cache-dir {file} is a file"),
    (["run", "--profile", "{tiny}", "--cache-dir", UNWRITABLE], "--cache-dir"),
    (["run", "--profile", "{tiny}", "--data-root", "{file}"], "--data-root {file} is a file"),
    (["run", "--profile", "{tmp}/nowhere.toml"], "does not exist"),
    (["run", "--profile", "{file}"], "unknown profile"),  # not a .toml: looked up by name
    (["run", "--profile", "{tmp}/notes.toml"], "is not valid TOML"),
    (["run", "--profile", "{tiny}", "--threads", "0"], "--threads must be >= 1"),
    (["run", "--profile", "{tiny}", "--seeds", "-1"], "--seeds takes integers >= 0"),
    # every other command's flags
    (["perf", "--steps", "0"], "--steps must be >= 1"),
    (["perf", "--batch-sizes", "64,0"], "--batch-sizes must be >= 1"),
    (["perf", "--cache-dir", "{file}"], "--cache-dir {file} is a file"),
    (["perf", "--methods", "FT", "--profile", "{tiny}", "--seed", "-2"], "--seed must be >= 0"),
    (["embed", "--profile", "{tiny}", "--method", "FT", "--scenario", "random10", "--curvature", "nan"], "--curvature"),
    (["embed", "--profile", "{tiny}", "--method", "FT", "--scenario", "random10", "--max-points", "5"], "--max-points"),
    (["embed", "--profile", "{tiny}", "--method", "FT", "--scenario", "random10", "--out", "{file}"], "--out {file} is a file"),
    (["embed", "--profile", "{tiny}", "--method", "FT", "--scenario", "random10", "--set", "FT.lr=nan"], "not a finite"),
    (["table", "--results", "{file}"], "has no records/ folder"),
    (["leaderboard", "--results", "{file}"], "is not a folder"),
    (["baseline", "--results", "{tmp}/res", "--out", "{tmp}"], "is a folder; pass a file name"),
    (["baseline", "--results", "{tmp}/res", "--out", UNWRITABLE + "/b.json"], "is not a folder this user can write"),
    (["compare", "{tmp}/res", "--against", "{file}"], "is unreadable"),
    (["compare", "{tmp}/res", "--against", "{tmp}"], "--against {tmp} has no records/ folder"),
    (["compare", "{file}", "--against", "{tmp}/res"], "unreadable"),
]


@pytest.mark.parametrize("argv,words", CASES, ids=[" ".join(a)[:60] for a, _ in CASES])
def test_bad_input_is_one_line_before_any_work(argv, words, tmp_path, capsys, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(cache))
    monkeypatch.chdir(tmp_path)  # a default results/local/ would land here, where the test can see it
    (tmp_path / "notes.txt").write_text("not a profile\n")
    (tmp_path / "notes.toml").write_text("this is = not = toml\n")
    (tmp_path / "res" / "records").mkdir(parents=True)
    subs = {"{tmp}": str(tmp_path), "{file}": str(tmp_path / "notes.txt"), "{tiny}": profile(tmp_path)}

    def fill(text: str) -> str:
        for key, value in subs.items():
            text = text.replace(key, value)
        return text

    assert main([fill(a) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and fill(words) in err, err
    trained = list(cache.rglob("*.pt")) if cache.exists() else []
    assert trained == [] and not (tmp_path / "results").exists()  # nothing ran, nothing was written


@pytest.mark.parametrize("change,words", [
    (("download = false", 'download = "no"'), "download must be true or false"),
    ((None, "smoke = 1\n"), "smoke must be true or false"),
    (('seeds = [0]', 'seeds = [true]'), "seeds must be a non-empty list"),
    ((None, "threads = true\n"), "threads must be an integer >= 1"),
    ((None, 'numerics = "fast"\n'), "numerics must be one of native, portable"),
    ((None, "forget_class = -1\n"), "forget_class must be an integer >= 0"),
    (('dataset = "digits"', "dataset = 3"), "dataset must be a string"),
    (('model = "small_cnn"', "model = 1"), "model must be a model name"),
    (("epochs = 3", "epochs = 3\nlr = inf"), "must be finite numbers"),
    (("epochs = 3", "epochs = 3\nlr = nan"), "must be finite numbers"),
    (("epochs = 3", "epochs = true"), "epochs must be an integer >= 1"),
    (("epochs = 3", 'epochs = 3\nmilestones = "half"'), "milestones must be a list"),
    (("[params.FT]\nepochs = 1", "[params.FT]\nlr = nan"), "FT.lr: nan is not a finite number"),
    (("[params.FT]", "[params.FTT]"), "unknown method 'FTT'"),
    ((None, "colour = 1\n"), "unknown key(s) colour"),
])
def test_bad_profile_values_are_refused(change, words, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    path = bad_profile(tmp_path, *change)
    assert main(["run", "--profile", path, "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "r" / "records").exists()


def test_cache_env_naming_a_file_is_refused(tmp_path, capsys, monkeypatch):
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "f"))
    assert main(["run", "--profile", profile(tmp_path), "--results", str(tmp_path / "r")]) == 2
    assert "$UNLEARN_BENCH_CACHE" in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_folder_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        assert main(["run", "--profile", profile(tmp_path), "--results", str(locked)]) == 2
    finally:
        locked.chmod(0o755)
    assert "is not a folder this user can write into" in capsys.readouterr().err


def test_usage_hint_names_real_commands(capsys):
    assert main(["--bogus"]) == 2
    assert capsys.readouterr().err.strip().endswith("(see: python -m bench --help)")
    assert main(["run", "--bogus"]) == 2
    assert capsys.readouterr().err.strip().endswith("unrecognized arguments: --bogus (see: python -m bench run --help)")
    assert main(["run", "--seeds"]) == 2
    assert capsys.readouterr().err.strip().endswith("(see: python -m bench run --help)")
    assert main([]) == 2
    assert "python -m bench bench" not in capsys.readouterr().err


def test_baseline_that_is_not_json_names_the_file(tmp_path, capsys):
    (tmp_path / "res" / "records").mkdir(parents=True)
    (tmp_path / "res" / "records" / "x.json").write_text(json.dumps({"status": "failed", "cell_id": "x", "cell": {}}))
    (tmp_path / "b.json").write_bytes(b"\x89PNG\r\n")
    assert main(["compare", str(tmp_path / "res"), "--against", str(tmp_path / "b.json")]) == 2
    err = capsys.readouterr().err
    assert f"baseline {tmp_path / 'b.json'} is unreadable" in err
