"""`bench tune`: one Optuna study per (profile, method, scenario kind), the same for every method.

Fair by construction:
- every method gets the same number of finished trials (`[tune] trials`) and the same
  compute cap per trial (`[tune] budget_epochs`, enforced while it runs, see budget.py);
- TPE sampling, seeded per study (`[tune] sampler_seed` and the study's name);
- the objective is the mean Avg-Gap to Retrain over the trial's cells: each scenario of the
  kind that the profile reports, on each tuning seed (`seed`, `seed+1`, ...), never a
  reported seed; measured on a validation slice held out of the training data, never D_t
  (holdout.py), with the tuning Original and Retrain trained without that slice;
- pruning: after each cell the running mean is reported; Optuna's MedianPruner stops a
  trial whose running mean is worse than the median of earlier trials at the same step
  (after 5 startup trials), so a hopeless setting costs one cell, not all of them. A trial
  that hits the compute cap or diverges is pruned too (the reason is kept on the trial).

Trials are cells: each is a `CellSpec` in tuning mode run by the same `Executor` as
`bench run`. Studies live in Optuna's SQLite storage (`<cache>/tune/<profile>.db`): a killed
run resumes where it stopped (trials left RUNNING by a kill are marked FAIL and redone).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bench.cell import CellSpec
from bench.data.catalog import DATASETS
from bench.environment import code_version
from bench.errors import ConfigError
from bench.flops import cost_model
from bench.hparams import IntRange, SearchSpace
from bench.method import MethodInfo
from bench.profiles import Profile
from bench.splits import parse_scenario
from bench.tune.budget import budget_pflops
from bench.tune.holdout import Holdout

OBJECTIVE = "Avg-Gap to Retrain (mean over the trial's cells; validation slice held out of train, never D_t)"
STARTUP_TRIALS = 5


def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def search_space(method: MethodInfo, max_schedule: int = 0) -> dict[str, SearchSpace]:
    """The method's declared search ranges; schedule lengths capped at `max_schedule` (0: no cap)."""
    spaces = {}
    for spec in method.param_specs():
        space = spec.search
        if space is None:
            continue
        if max_schedule and isinstance(space, IntRange) and space.schedule and space.high > max_schedule:
            space = space.narrowed(space.low, max(space.low, max_schedule))
        spaces[spec.name] = space
    return spaces


@dataclass
class StudySetup:
    """Everything that defines one study; stored on it, so a resumed study cannot silently change."""

    profile: Profile
    method: MethodInfo
    kind: str
    scenarios: list[str]
    seeds: list[int]
    base_params: dict[str, Any]
    space: dict[str, SearchSpace]
    budget_pflops: float
    n_train_tuning: int
    holdout: Holdout
    device: str
    data_root: Path
    cache_dir: Path
    download: bool = False

    @property
    def name(self) -> str:
        return f"{self.profile.name}/{self.method.name}/{self.kind}"

    def config(self) -> dict[str, Any]:
        t = self.profile.tune
        return {
            "method": self.method.name, "kind": self.kind, "scenarios": self.scenarios, "seeds": self.seeds,
            "dataset": self.profile.dataset, "model": self.profile.model, "train": dataclasses.asdict(self.profile.train),
            "base_params": self.base_params, "space": {k: v.describe() for k, v in self.space.items()},
            "budget_epochs": t.budget_epochs, "budget_pflops": self.budget_pflops, "holdout": t.holdout,
            "holdout_seed": self.holdout.seed, "sampler": f"TPE(seed={self.sampler_seed})",
            "pruner": f"Median(n_startup_trials={STARTUP_TRIALS}, per cell)", "objective": OBJECTIVE,
        }

    @property
    def sampler_seed(self) -> int:
        from bench.splits import derive_seed

        return derive_seed(self.profile.tune.sampler_seed, self.name) % (2**32)

    def cell(self, params: dict[str, Any], scenario: str, seed: int) -> CellSpec:
        p = self.profile
        return CellSpec(
            profile=f"{p.name}-tune", method=self.method.name, params=params, dataset=p.dataset,
            model=p.model or DATASETS.get(p.dataset).default_model, scenario=scenario, seed=seed,
            train=dataclasses.asdict(p.train), eval=dataclasses.asdict(p.eval), device=self.device,
            forget_class=p.forget_class, data_root=str(self.data_root), cache_dir=str(self.cache_dir),
            download=self.download, threads=p.threads, task=p.task, task_params=dict(p.task_params),
            tuning={"holdout": self.holdout.fraction, "holdout_seed": self.holdout.seed,
                    "budget_pflops": self.budget_pflops},
        )


def setup(profile: Profile, method: MethodInfo, kind: str, *, device: str | None, data_root: Path, cache_dir: Path,
          download: bool = False) -> StudySetup:
    ds = DATASETS.get(profile.dataset)
    scenarios = [s.name for s in (parse_scenario(x, ds.num_classes, profile.forget_class) for x in profile.scenarios)
                 if s.kind == kind]
    if not scenarios:
        raise ConfigError(f"profile {profile.name} has no {kind} scenario to tune on")
    t = profile.tune
    space = search_space(method, t.max_schedule)
    if not space:
        raise ConfigError(f"method {method.name} declares no search space (no hp(..., search=...)): nothing to tune")
    base = {**(method.smoke if profile.smoke else {}), **profile.params.get(method.name, {})}
    method.params(base)  # validated
    holdout = Holdout(t.holdout, t.seed)
    kept, _ = holdout.indices(ds.train_size)
    model = profile.model or ds.default_model
    costs = cost_model(model, ds.channels, ds.num_classes, ds.image_size)
    cap = budget_pflops(t.budget_epochs, len(kept), costs) if t.budget_epochs > 0 else 0.0
    return StudySetup(profile=profile, method=method, kind=kind, scenarios=scenarios,
                      seeds=list(range(t.seed, t.seed + t.repeats)), base_params=base, space=space,
                      budget_pflops=cap, n_train_tuning=len(kept), holdout=holdout,
                      device=device or profile.device, data_root=data_root, cache_dir=cache_dir, download=download)


def storage_url(cache_dir: Path, profile: str) -> str:
    folder = cache_dir / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / (profile + '.db')}"


def open_study(s: StudySetup, *, fresh: bool = False):
    """Create or resume the study; refuses to resume one made with another configuration."""
    optuna = _optuna()
    url = storage_url(s.cache_dir, s.profile.name)
    if fresh:
        try:
            optuna.delete_study(study_name=s.name, storage=url)
        except KeyError:
            pass
    study = optuna.create_study(
        study_name=s.name, storage=url, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=s.sampler_seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=0),
    )
    config = json.loads(json.dumps(s.config()))
    stored = study.user_attrs.get("config")
    if stored is None:
        study.set_user_attr("config", config)
    elif stored != config:
        changed = sorted(k for k in set(stored) | set(config) if stored.get(k) != config.get(k))
        raise ConfigError(f"study {s.name} exists with another configuration ({', '.join(changed)} differ); "
                          "rerun with --fresh to start it over")
    for trial in study.get_trials(deepcopy=False):  # a killed run leaves its trial RUNNING: retire it
        if trial.state == optuna.trial.TrialState.RUNNING:
            study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
    return study


def finished(study) -> list:
    optuna = _optuna()
    done = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return [t for t in study.get_trials(deepcopy=False) if t.state in done]


def objective(s: StudySetup, executor, say: Callable[[str], None] | None = None):
    optuna = _optuna()

    def run(trial) -> float:
        values = {name: space.suggest(trial, name) for name, space in s.space.items()}
        params = dataclasses.asdict(s.method.params({**s.base_params, **values}))
        gaps, cells, start = [], [], time.perf_counter()
        trial.set_user_attr("params", params)
        plan = [(seed, sc) for seed in s.seeds for sc in s.scenarios]
        for step, (seed, scenario) in enumerate(plan):
            spec = s.cell(params, scenario, seed)
            _, record = next(iter(executor.map([spec])))
            if record["status"] != "ok":
                trial.set_user_attr("cells", cells)
                trial.set_user_attr("seconds", time.perf_counter() - start)
                trial.set_user_attr("pruned_reason", record["error"])
                raise optuna.TrialPruned(record["error"])
            m = record["metrics"]
            gaps.append(m["avg_gap"])
            cells.append({"scenario": scenario, "seed": seed, "avg_gap": m["avg_gap"],
                          **{k: m[k] for k in ("RA", "UA", "TA", "MIA")}, "pflops": record["cost"]["pflops"],
                          "unlearn_seconds": record["timing"]["unlearn_seconds"]})
            value = statistics.fmean(gaps)
            trial.report(value, step)
            if say:
                say(f"{s.name} trial {trial.number} cell {step + 1}: gap {m['avg_gap']:.3f} (mean {value:.3f})")
            if step + 1 < len(plan) and trial.should_prune():  # the last cell completes the trial: never pruned
                trial.set_user_attr("cells", cells)
                trial.set_user_attr("seconds", time.perf_counter() - start)
                trial.set_user_attr("pruned_reason", f"median pruner after {step + 1} cell(s): mean {value:.4g}")
                raise optuna.TrialPruned()
        trial.set_user_attr("cells", cells)
        trial.set_user_attr("seconds", time.perf_counter() - start)
        return statistics.fmean(gaps)

    return run


def run_study(s: StudySetup, executor, *, fresh: bool = False, trials: int | None = None,
              say: Callable[[str], None] | None = None):
    """Run the study until it has `trials` finished (complete or pruned) trials; returns it."""
    study = open_study(s, fresh=fresh)
    target = trials or s.profile.tune.trials
    todo = target - len(finished(study))
    while todo > 0:  # one at a time, so a pruned or failed trial is recounted correctly
        study.optimize(objective(s, executor, say), n_trials=1, catch=())
        todo = target - len(finished(study))
    return study


def best_entry(s: StudySetup, study) -> dict[str, Any]:
    """The tuned-file entry for this study: the best trial's searched values and provenance."""
    optuna = _optuna()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError(f"study {s.name} has no completed trial (all pruned or failed): widen the budget or the ranges")
    best = study.best_trial
    code = code_version()
    return {
        "params": {k: best.params[k] for k in s.space},
        "study": s.name,
        "objective": OBJECTIVE,
        "best_value": round(best.value, 6),
        "best_trial": best.number,
        "trials": len(finished(study)),
        "trials_complete": len(complete),
        "budget": f"{s.profile.tune.trials} trials; cap {s.profile.tune.budget_epochs:g} epoch-equivalents "
                  f"({s.budget_pflops:.4g} PFLOPs) per cell",
        "budget_epochs": float(s.profile.tune.budget_epochs),
        "budget_pflops": s.budget_pflops,
        "scenarios": s.scenarios,
        "tuning_seeds": s.seeds,
        "holdout": s.holdout.fraction,
        "holdout_seed": s.holdout.seed,
        "space": {k: v.describe() for k, v in s.space.items()},
        "date": dt.datetime.now(dt.timezone.utc).date().isoformat(),
        "commit": code["commit"] + ("-dirty" if code.get("dirty") else ""),
    }
