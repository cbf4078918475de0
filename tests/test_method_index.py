"""The method index (read from source, no torch) says exactly what the imported registry says,
and the commands that need only it (list, --help, usage errors) never import the heavy libraries."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench import method_index as mi

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "torchvision", "geoopt", "scipy", "pandas", "sklearn", "matplotlib", "seaborn", "fvcore")


def test_index_from_source_equals_the_imported_registry():
    # in a fresh interpreter: other tests register, patch and remove methods in this one
    code = ("import bench.method_index as mi; s = mi.read_sources(); "
            "assert [e.name for e in s][:2] == ['Retrain', 'Original']; "
            "assert s == mi.from_registry(), [(a, b) for a, b in zip(s, mi.from_registry()) if a != b][:1]")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parent.parent)
    assert run.returncode == 0, run.stderr[-2000:]  # names, order, summaries, scenarios, smoke, every field spec


def test_models_index_equals_the_registry():
    from bench.models import MODELS

    assert mi.model_index() == {n: (MODELS.get(n).__doc__ or "").strip().splitlines()[0] for n in MODELS}


def test_a_declaration_it_cannot_read_falls_back_to_importing(tmp_path, monkeypatch):
    module = tmp_path / "odd.py"
    module.write_text('from dataclasses import dataclass\nfrom bench.hparams import hp\n'
                      'N = 3\n@register_method("Odd")\n@dataclass(frozen=True)\nclass Odd:\n'
                      '    """Odd."""\n    a: int = hp(N * 2, low=1)\n    b: str = hp(f"x{N}")\n')
    parsed = mi._Module(mi._Reader(), "odd", module)
    assert parsed.value(parsed.tree.body[-1].body[1].value.args[0]) == 6  # names of constants and arithmetic
    with pytest.raises(mi.Unreadable, match="not a literal"):
        parsed.entry(parsed.classes["Odd"], parsed.classes["Odd"].decorator_list[0])

    def unreadable():
        raise mi.Unreadable("test")

    mi._declared.cache_clear()
    monkeypatch.setattr(mi, "read_sources", unreadable)
    try:
        assert list(mi.method_index()) == [e.name for e in mi.from_registry()]
    finally:
        mi._declared.cache_clear()


def test_index_follows_dataclass_inheritance():
    salun = mi.method_index().get("SalUn")
    names = [s.name for s in salun.specs]
    assert names[:3] == ["epochs", "lr", "lr_schedule"]  # RandomLabel's fields first, overrides in place
    assert salun.specs[names.index("lr_schedule")].default == "cosine" and "mask_ratio" in names


def _modules_after(argv: list[str]) -> tuple[int, list[str], str]:
    """Run `main(argv)` in a fresh interpreter; its exit status, the heavy modules it imported, stderr."""
    code = ("import sys, json\nfrom bench.cli import main\ntry:\n    rc = main(%r)\nexcept SystemExit as e:\n"
            "    rc = e.code\nprint(json.dumps([rc, sorted(m for m in %r if m in sys.modules)]), file=sys.__stderr__)"
            % (argv, HEAVY))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    rc, heavy = json.loads(out.stderr.strip().splitlines()[-1])
    return rc, heavy, out.stderr


@pytest.mark.parametrize("argv,rc", [
    (["list"], 0),
    (["--help"], 0),
    (["run", "--help"], 0),
    (["run", "--methods", "FTT"], 2),
    (["run", "--set", "FT.lr=nan"], 2),
    (["run", "--profile", "nope"], 2),
    (["run", "--results", "README.md"], 2),
    (["compare", "nowhere", "--against", "results/quick/baseline.json"], 2),
    (["table", "--results", "nowhere"], 2),
    (["leaderboard", "--results", "README.md"], 2),
    (["embed", "--method", "FT", "--scenario", "random10", "--set", "FT.x=1"], 2),
    (["perf", "--steps", "0"], 2),
])
def test_answers_without_importing_heavy_libraries(argv, rc):
    status, heavy, err = _modules_after(argv)
    assert status == rc, err
    assert heavy == [], f"{argv} imported {heavy}"
