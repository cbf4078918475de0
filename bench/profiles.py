"""Profiles: named TOML files fixing a dataset, model, recipes, seeds and scenarios.

A profile is looked up by name in bench/profiles/ or given as a path to a TOML
file. Unknown keys and bad values are `ConfigError`s naming the file and key.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.recipe import TrainRecipe
from bench.errors import ConfigError
from bench.hparams import build_params, hp

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
DEVICES = ("auto", "cpu", "cuda")
NUMERICS = ("native", "portable")  # see bench/numerics.py


@dataclass(frozen=True)
class EvalConfig:
    batch_size: int = hp(1024, low=1, doc="evaluation batch size")
    classwise_test: str = hp("remaining", choices=("remaining", "all"),
                             doc="class-wise D_t: test set without the forgotten class, or all of it")
    nonmember_pool: str = hp("none", choices=("none", "test-half"),
                             doc="non-members a method may train on (GP full form), disjoint from every "
                                 "evaluation set: none (the papers' whole-test-set evaluation; such a method "
                                 "fails), or test-half (a seeded half of the test set; TA and MIA on the other)")


@dataclass(frozen=True)
class TuneConfig:
    """How `bench tune` searches on this profile: the same for every method."""

    trials: int = hp(20, low=1, doc="trials per study (one study per method and scenario kind)")
    budget_epochs: float = hp(20.0, low=0.0, doc="compute cap per trial: passes over the tuning training set at "
                                                  "6F per sample (0: no cap)")
    max_schedule: int = hp(0, low=0, doc="caps the searched range of schedule lengths (epochs, passes); 0: no cap")
    holdout: float = hp(0.2, low=0.01, high=0.5, doc="fraction of the training set held out as the validation slice")
    seed: int = hp(1000, low=0, doc="first tuning seed (split, holdout, Original); never a reported seed")
    repeats: int = hp(2, low=1, doc="tuning seeds per trial (seed, seed+1, ...); the pruner acts between cells")
    sampler_seed: int = hp(0, low=0, doc="seeds the TPE sampler")


MIN_AUDIT_REPLICAS = 3  # U-LiRA fits each example's Gaussians on the K - 1 replicas it does not score


def check_replicas(k: int, where: str) -> None:
    """K = 0 or 1: no audit; 2 would train replicas that `bench audit` cannot use."""
    if k < 0 or 1 < k < MIN_AUDIT_REPLICAS:
        raise ConfigError(f"{where}: replicas must be 0 or 1 (no audit) or >= {MIN_AUDIT_REPLICAS} (the audit fits each "
                          f"example on K - 1 >= 2 replicas), got {k}")


@dataclass(frozen=True)
class AuditConfig:
    """[audit]: the per-example audit's replicas (see bench/audit and docs/audit.md)."""

    replicas: int = 0  # K >= 3: K Retrain models and K runs of each method per (scenario, seed); 0 or 1: none
    scenarios: tuple[str, ...] | None = None  # scenarios that get replicas (None: all of the profile's)
    sample: int = 500  # D_r and D_t samples whose logits every cell stores
    forget_sample: int = 0  # D_f samples whose logits every cell stores (0: all of D_f)


@dataclass(frozen=True)
class Profile:
    name: str
    description: str
    dataset: str
    model: str | None  # None: the dataset's default model
    device: str
    seeds: tuple[int, ...]
    scenarios: tuple[str, ...]
    forget_class: int
    methods: tuple[str, ...] | None  # None: every registered method
    threads: int | None
    download: bool
    smoke: bool  # use each method's smoke settings (shorter schedules) under [params]
    numerics: str  # "portable": pin the CPU kernels (bench/numerics.py) so numbers match on any x86-64 CPU
    train: TrainRecipe
    eval: EvalConfig
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-method hyperparameter overrides
    task: str = "classify"  # the kind of task (bench/tasks)
    task_params: dict[str, Any] = field(default_factory=dict)  # the task's settings, validated by the task
    source: str = ""
    tune: TuneConfig = field(default_factory=TuneConfig)
    tuned_path: Path | None = None  # the file `bench tune` writes and `bench run` applies (key `tuned`)
    audit: AuditConfig = AuditConfig()


_TOP_KEYS = {"description", "dataset", "model", "device", "seeds", "scenarios", "forget_class", "methods",
             "threads", "download", "smoke", "numerics", "train", "eval", "params",
             "task", "task_params", "tune", "tuned", "audit"}


def available() -> list[str]:
    return sorted(p.stem for p in PROFILE_DIR.glob("*.toml"))


def _section(cls: type, table: Any, where: str):
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    names = {f.name for f in dataclasses.fields(cls)}
    for key in table:
        if key not in names:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(names))}")
    try:
        if cls is TrainRecipe:
            milestones = table.get("milestones", TrainRecipe.milestones)
            if not isinstance(milestones, (list, tuple)):
                raise ConfigError(f"{where}: milestones must be a list of fractions, e.g. [0.5, 0.75]")
            table = {**table, "milestones": tuple(milestones)}
            obj = cls(**table)
            _check_recipe(obj, where)
            return obj
        return build_params(cls, table, where)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # TOML's true is not the integer 1 here


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_recipe(recipe: TrainRecipe, where: str) -> None:
    if not all(_is_number(v) for v in (recipe.lr, recipe.momentum, recipe.weight_decay, recipe.gamma, *recipe.milestones)):
        raise ConfigError(f"{where}: lr, momentum, weight_decay, gamma and milestones must be finite numbers")
    checks = [
        (_is_int(recipe.epochs) and recipe.epochs >= 1, "epochs must be an integer >= 1"),
        (_is_int(recipe.batch_size) and recipe.batch_size >= 1, "batch_size must be an integer >= 1"),
        (isinstance(recipe.lr, (int, float)) and recipe.lr > 0, "lr must be > 0"),
        (isinstance(recipe.momentum, (int, float)) and 0 <= recipe.momentum < 1, "momentum must be in [0, 1)"),
        (isinstance(recipe.weight_decay, (int, float)) and recipe.weight_decay >= 0, "weight_decay must be >= 0"),
        (all(isinstance(m, (int, float)) and 0 < m < 1 for m in recipe.milestones), "milestones must be fractions in (0, 1)"),
        (isinstance(recipe.gamma, (int, float)) and 0 < recipe.gamma <= 1, "gamma must be in (0, 1]"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(f"{where}: {message}")


def _audit(table: Any, where: str) -> AuditConfig:
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    known = {f.name for f in dataclasses.fields(AuditConfig)}
    for key in table:
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {', '.join(sorted(known))}")
    replicas, sample = table.get("replicas", 0), table.get("sample", 500)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise ConfigError(f"{where}: replicas must be an integer (K >= {MIN_AUDIT_REPLICAS} turns the audit on)")
    check_replicas(replicas, where)
    if not isinstance(sample, int) or isinstance(sample, bool) or sample < 1:
        raise ConfigError(f"{where}: sample must be an integer >= 1")
    forget_sample = table.get("forget_sample", 0)
    if not isinstance(forget_sample, int) or isinstance(forget_sample, bool) or forget_sample < 0:
        raise ConfigError(f"{where}: forget_sample must be an integer >= 0 (0 keeps all of D_f)")
    scenarios = table.get("scenarios")
    if scenarios is not None and not (isinstance(scenarios, list) and all(isinstance(s, str) for s in scenarios)):
        raise ConfigError(f"{where}: scenarios must be a list of scenario names")
    return AuditConfig(replicas=replicas, scenarios=tuple(scenarios) if scenarios is not None else None,
                       sample=sample, forget_sample=forget_sample)


def load(name_or_path: str) -> Profile:
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = PROFILE_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise ConfigError(f"unknown profile {name_or_path!r}; known: {', '.join(available())} (or give a .toml path)")
    elif not path.is_file():
        raise ConfigError(f"profile file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"profile {path} is not valid TOML ({exc})") from None
    except OSError as exc:
        raise ConfigError(f"profile {path} cannot be read ({exc.strerror})") from None
    return parse(raw, name=path.stem, source=str(path))


def parse(raw: dict[str, Any], name: str, source: str = "") -> Profile:
    where = f"profile {name}"
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; known: {', '.join(sorted(_TOP_KEYS))}")
    if "dataset" not in raw:
        raise ConfigError(f"{where}: 'dataset' is required")
    device = raw.get("device", "auto")
    if device not in DEVICES:
        raise ConfigError(f"{where}: device must be one of {', '.join(DEVICES)}, got {device!r}")
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(_is_int(s) and s >= 0 for s in seeds):
        raise ConfigError(f"{where}: seeds must be a non-empty list of integers >= 0")
    scenarios = raw.get("scenarios", ["random10", "random50", "class"])
    if not isinstance(scenarios, list) or not all(isinstance(s, str) for s in scenarios):
        raise ConfigError(f"{where}: scenarios must be a list of names such as random10 or class9")
    methods = raw.get("methods", "all")
    if methods != "all" and not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
        raise ConfigError(f"{where}: methods must be \"all\" or a list of method names")
    threads = raw.get("threads")
    if threads is not None and not (_is_int(threads) and threads >= 1):
        raise ConfigError(f"{where}: threads must be an integer >= 1")
    params = raw.get("params", {})
    if not isinstance(params, dict) or not all(isinstance(v, dict) for v in params.values()):
        raise ConfigError(f"{where}: [params.<METHOD>] tables hold per-method hyperparameters")
    from bench.plugins import load_all_tasks
    from bench.tasks import CLASSIFY, TASKS

    load_all_tasks()
    task = raw.get("task", CLASSIFY)
    if not isinstance(task, str) or task not in TASKS:
        raise ConfigError(f"{where}: {TASKS.unknown_message(str(task))}")
    task_params = TASKS.get(task).params(raw.get("task_params", {}))
    forget_class = raw.get("forget_class", 9)
    if not _is_int(forget_class) or forget_class < 0:
        raise ConfigError(f"{where}: forget_class must be an integer >= 0")
    tune = _section(TuneConfig, raw.get("tune", {}), f"{where} [tune]")
    if set(range(tune.seed, tune.seed + tune.repeats)) & set(seeds):
        raise ConfigError(f"{where} [tune]: tuning seeds {tune.seed}..{tune.seed + tune.repeats - 1} overlap the "
                          f"reported seeds {seeds}; tuning must use seeds no reported cell uses (e.g. seed = 1000)")
    tuned = raw.get("tuned")
    if tuned is not None and not (isinstance(tuned, str) and tuned.endswith(".toml")):
        raise ConfigError(f"{where}: tuned names a .toml file (relative to bench/profiles/), e.g. \"tuned/{name}.toml\"")
    for key in ("dataset", "description"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}: {key} must be a string")
    if raw.get("model") is not None and not isinstance(raw["model"], str):
        raise ConfigError(f"{where}: model must be a model name (see python -m bench list)")
    for key in ("download", "smoke"):
        if not isinstance(raw.get(key, False), bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {raw[key]!r}")
    numerics = raw.get("numerics", "native")
    if numerics not in NUMERICS:
        raise ConfigError(f"{where}: numerics must be one of {', '.join(NUMERICS)}, got {numerics!r}")
    return Profile(
        name=name,
        description=str(raw.get("description", "")),
        dataset=str(raw["dataset"]),
        model=raw.get("model"),
        device=device,
        seeds=tuple(seeds),
        scenarios=tuple(scenarios),
        forget_class=forget_class,
        methods=None if methods == "all" else tuple(methods),
        threads=threads,
        download=raw.get("download", True),
        smoke=raw.get("smoke", False),
        numerics=numerics,
        train=_section(TrainRecipe, raw.get("train", {}), f"{where} [train]"),
        eval=_section(EvalConfig, raw.get("eval", {}), f"{where} [eval]"),
        params={k: dict(v) for k, v in params.items()},
        task=task,
        task_params=task_params,
        source=source,
        tune=tune,
        tuned_path=None if tuned is None else (Path(source).parent if source else PROFILE_DIR) / tuned,
        audit=_audit(raw.get("audit", {}), f"{where} [audit]"),
    )
