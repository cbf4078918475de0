"""Results against a stored baseline: every rule on every (dataset, model, scenario, method),
all failures collected into one table.

A failure is: a quantity that moved the wrong way by more than its tolerance, a cell
the baseline has and the results lack (or whose run failed), or a baseline seed that
is missing now. A method only in the results is listed as new, not a failure. Timing
rules are skipped, with a warning, where the two sides ran on different machines.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from bench.reports.baseline import entry_key, machine_of
from bench.reports.frame import KEY
from bench.reports.render import text_table
from bench.reports.stats import mean_std
from bench.reports.tolerances import RULES, Tolerance

EPS = 1e-9  # float noise is not a regression
HEADERS = ["cell", "check", "baseline", "now", "delta", "tolerance"]
RIGHT = [False, False, True, True, True, False]


@dataclass(frozen=True)
class Finding:
    cell: str
    check: str
    baseline: str
    now: str
    delta: str
    tolerance: str

    def row(self) -> list[str]:
        return [self.cell, self.check, self.baseline, self.now, self.delta, self.tolerance]


@dataclass
class Comparison:
    failures: list[Finding] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: int = 0

    @property
    def ok(self) -> bool:
        return not self.failures


def _cell(key: tuple[str, ...]) -> str:
    return "/".join(key[:3]) + f" {key[3]}"


def _num(quantity: str, value: float) -> str:
    if math.isnan(value):
        return "–"
    if quantity == "pflops":
        return f"{value:.4g}"
    return f"{value:.2f}"


def _check(key: tuple, quantity: str, base: list[float], now: list[float], tol: Tolerance,
           measured_spread: float | None = None) -> Finding | None:
    """`measured_spread`: the seed std stored with the baseline (`bench baseline --spread-from`),
    used instead of the std over the baseline's own seeds (unknown with one seed)."""
    rule = RULES[quantity]
    base_mean, spread = mean_std(base)
    if measured_spread is not None:
        spread = measured_spread
    now_mean, _ = mean_std(now)
    delta = now_mean - base_mean
    allowed = tol.allowed(base_mean, spread)
    worse = -delta if rule.higher_is_better else delta
    if worse <= allowed + EPS:
        return None
    direction = "must not fall" if rule.higher_is_better else "must not rise"
    return Finding(_cell(key), f"{quantity} ({direction})", _num(quantity, base_mean), _num(quantity, now_mean),
                   f"{delta:+.4g}", tol.describe(base_mean, spread))


def _config_changed(base: dict[str, Any], cur: dict[str, Any]) -> bool:
    """Whether a seed both sides ran had a different configuration hash (hashes are per seed)."""
    b = dict(zip(base["seeds"], base.get("config_hashes") or []))
    c = dict(zip(cur["seeds"], cur.get("config_hashes") or []))
    return any(b[s] != c[s] for s in set(b) & set(c))


def compare(now: dict[str, Any], baseline: dict[str, Any], tolerances: dict[str, Tolerance],
            skip_timing: bool = False) -> Comparison:
    result = Comparison()
    now_entries = {entry_key(e): e for e in now["entries"]}
    base_entries = {entry_key(e): e for e in baseline["entries"]}
    failed_now: dict[tuple, list[dict]] = defaultdict(list)
    for f in now.get("failed", []):
        failed_now[tuple(f.get(k) for k in KEY)].append(f)
    machine_pairs: dict[tuple[str, str], int] = defaultdict(int)
    extra_seeds: list[str] = []
    changed: list[str] = []

    for key, base in base_entries.items():
        for f in failed_now.get(key, []):
            result.failures.append(Finding(_cell(key), f"run (seed {f.get('seed')})", "ok", "failed", "", f.get("error", "")))
        if key not in now_entries:
            if key not in failed_now:
                result.failures.append(Finding(_cell(key), "present", f"seeds {base['seeds']}", "missing", "", ""))
            continue
        cur = now_entries[key]
        failed_seeds = {f.get("seed") for f in failed_now.get(key, [])}
        missing = sorted(set(base["seeds"]) - set(cur["seeds"]) - failed_seeds)
        if missing:
            result.failures.append(Finding(_cell(key), "seeds", str(base["seeds"]), str(cur["seeds"]),
                                           f"missing {missing}", ""))
        if set(cur["seeds"]) - set(base["seeds"]):
            extra_seeds.append(_cell(key))
        if _config_changed(base, cur):
            changed.append(_cell(key))
        same_machine = machine_of(base) == machine_of(cur)
        if not same_machine:
            machine_pairs[(machine_of(base), machine_of(cur))] += 1
        for quantity, tol in tolerances.items():
            if RULES[quantity].timing and (skip_timing or not same_machine):
                continue
            if quantity not in base["values"] or quantity not in cur["values"]:
                continue  # not a quantity of this entry's task (e.g. RA for an encoder)
            result.checked += 1
            measured = (base.get("spread") or {}).get("std", {}).get(quantity)
            finding = _check(key, quantity, base["values"][quantity], cur["values"][quantity], tol, measured)
            if finding is not None:
                result.failures.append(finding)

    for (base_machine, now_machine), count in machine_pairs.items():
        result.warnings.append(f"timing checks skipped for {count} cell(s): the baseline ran on [{base_machine}], "
                               f"these results on [{now_machine}]")
    if skip_timing:
        result.warnings.append("timing checks skipped (--skip-timing)")
    if changed:
        # the hash covers the code fingerprint too: any harness edit lists every cell here
        result.notes.append("configuration hash (hyperparameters, recipe or code fingerprint) differs from the "
                            f"baseline's: {'; '.join(changed)}")
    if extra_seeds:
        result.notes.append(f"seeds not in the baseline (means are over different seeds): {'; '.join(extra_seeds)}")
    new: dict[str, list[str]] = defaultdict(list)
    for key in now_entries:
        if key not in base_entries:
            new[key[3]].append("/".join(key[:3]))
    for key in failed_now:
        if key not in base_entries and key not in now_entries:
            new[key[3]].append("/".join(map(str, key[:3])) + " (failed)")
    result.new = [f"{method}: {', '.join(where)}" for method, where in new.items()]
    return result


def numerics(environment: dict[str, Any]) -> str | None:
    """Which CPU kernels a record's numbers came from (None: not a CPU run, or not recorded)."""
    if environment.get("device_type") != "cpu" or "cpu_capability" not in environment:
        return None
    pins = environment.get("numerics_pins") or {}
    pinned = ", ".join(f"{k}={v}" for k, v in sorted(pins.items())) if pins else "no pins"
    return f"cpu_capability={environment['cpu_capability']}; {pinned}"


def numerics_mismatch(now: dict[str, Any], baseline: dict[str, Any]) -> str | None:
    """A sentence saying what to do when the two sides' CPU numbers came from different kernels
    (single-seed CPU numbers move with the kernels: every difference would read as a regression)."""
    base = {entry_key(e): numerics(e.get("environment") or {}) for e in baseline["entries"]}
    pairs = set()
    for entry in now["entries"]:
        b, n = base.get(entry_key(entry)), numerics(entry.get("environment") or {})
        if b and n and b != n:
            pairs.add((b, n))
    if not pairs:
        return None
    b, n = sorted(pairs)[0]
    return (f"the baseline was computed with other CPU kernels ({b}) than these results ({n}), so their numbers "
            "differ without any regression; run the profile as shipped (`python -m bench run ...`: the quick "
            "profile pins portable numerics, see bench/numerics.py), or compare against a baseline made with "
            "the same kernels")


def render(result: Comparison, now_name: str, base_name: str) -> str:
    lines = [f"compare: {now_name} against {base_name}"]
    lines += [f"warning: {w}" for w in result.warnings]
    lines += [f"new (not in the baseline, not checked): {n}" for n in result.new]
    lines += [f"note: {n}" for n in result.notes]
    if result.ok:
        lines.append(f"OK: {result.checked} checks passed")
        return "\n".join(lines) + "\n"
    lines.append(f"REGRESSION: {len(result.failures)} failure(s) ({result.checked} checks made)")
    return "\n".join(lines) + "\n" + text_table(HEADERS, [f.row() for f in result.failures], RIGHT)
