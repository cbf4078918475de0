"""Typed hyperparameters: declared as dataclass fields, parsed from TOML or the CLI.

A method's hyperparameters are the fields of its dataclass. `hp(...)` adds a
range or a set of allowed values, a one-line description and, optionally, the
range `bench tune` searches (`search=log(0.01, 0.1)`, `uniform(...)`,
`int_range(...)`, `choice(...)`), taken from the papers where they state one;
`build_params` turns overrides (from a profile or `--set NAME.key=value`) into
a validated instance, with a one-line `ConfigError` for an unknown key or a bad value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping, Protocol

from bench.errors import ConfigError


# ---------------------------------------------------------------------------- search spaces


class Trial(Protocol):  # the part of optuna.Trial a search space uses
    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...
    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclasses.dataclass(frozen=True)
class FloatRange:
    """A float searched in [low, high], log-uniformly or uniformly."""

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"bad search range {self.describe()}")

    def suggest(self, trial: Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high

    def narrowed(self, low: float, high: float) -> "FloatRange":
        return dataclasses.replace(self, low=float(low), high=float(high))

    def describe(self) -> str:
        return f"{'log' if self.log else 'uniform'}({self.low:g}, {self.high:g})"


@dataclasses.dataclass(frozen=True)
class IntRange:
    """An integer searched in [low, high] (both included). `schedule`: a schedule length
    (epochs, passes), which a profile's [tune] max_schedule may cap."""

    low: int
    high: int
    log: bool = False
    schedule: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high or (self.log and self.low <= 0):
            raise ValueError(f"bad search range {self.describe()}")

    def suggest(self, trial: Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log)

    def bounds(self) -> tuple[int, int]:
        return self.low, self.high

    def narrowed(self, low: float, high: float) -> "IntRange":
        return dataclasses.replace(self, low=int(low), high=int(high))

    def describe(self) -> str:
        return f"int_range({self.low}, {self.high}{', log' if self.log else ''})"


@dataclasses.dataclass(frozen=True)
class Choice:
    """One of a fixed set of values."""

    values: tuple[Any, ...]

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("choice() needs at least one value")

    def suggest(self, trial: Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def bounds(self) -> tuple[Any, Any]:
        return min(self.values), max(self.values)

    def narrowed(self, low: float, high: float) -> "Choice":
        return Choice(tuple(v for v in self.values if low <= v <= high))

    def describe(self) -> str:
        return f"choice({', '.join(map(repr, self.values))})"


SearchSpace = FloatRange | IntRange | Choice


def log(low: float, high: float) -> FloatRange:
    """Searched log-uniformly in [low, high] (learning rates, penalty weights)."""
    return FloatRange(low, high, log=True)


def uniform(low: float, high: float) -> FloatRange:
    return FloatRange(low, high)


def int_range(low: int, high: int, *, log: bool = False, schedule: bool = False) -> IntRange:
    return IntRange(low, high, log=log, schedule=schedule)


def choice(*values: Any) -> Choice:
    return Choice(tuple(values))


# ---------------------------------------------------------------------------- fields


def hp(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
    search: SearchSpace | None = None,
    main: bool = False,
    doc: str = "",
) -> Any:
    """A hyperparameter field: default, optional closed range or choices, the range `bench tune`
    searches (None: not tuned), whether it is the method's main knob (the tuning report plots the
    objective against it), description."""
    meta = {"low": low, "high": high, "choices": choices, "search": search, "main": main, "doc": doc}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    name: str
    type: type
    default: Any
    low: float | None
    high: float | None
    choices: tuple[Any, ...] | None
    doc: str
    search: SearchSpace | None = None
    main: bool = False

    def describe(self) -> str:
        bounds = ""
        if self.choices:
            bounds = " one of " + "|".join(map(str, self.choices))
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            bounds = f" in [{lo}, {hi}]"
        doc = f"  {self.doc}" if self.doc else ""
        search = f"  [tune: {self.search.describe()}{', main' if self.main else ''}]" if self.search else ""
        return f"{self.name}: {self.type.__name__} = {self.default!r}{bounds}{search}{doc}"


def param_specs(cls: type) -> list[ParamSpec]:
    hints = typing.get_type_hints(cls)
    specs = []
    for f in dataclasses.fields(cls):
        meta = f.metadata
        specs.append(
            ParamSpec(
                name=f.name,
                type=hints[f.name],
                default=f.default,
                low=meta.get("low"),
                high=meta.get("high"),
                choices=meta.get("choices"),
                doc=meta.get("doc", ""),
                search=meta.get("search"),
                main=bool(meta.get("main", False)),
            )
        )
    return specs


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce(spec: ParamSpec, value: Any, where: str) -> Any:
    """Convert `value` (a TOML value or a CLI string) to the field's type and validate it."""
    t = spec.type
    try:
        if t is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in _TRUE | _FALSE:
                    raise ValueError
                value = low in _TRUE
            elif not isinstance(value, bool):
                raise ValueError
        elif t is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            value = int(value)
        elif t is float:
            if isinstance(value, bool):
                raise ValueError
            value = float(value)
            if not math.isfinite(value):  # nan/inf pass every bound check and then wreck the run
                raise ConfigError(f"{where}: {value!r} is not a finite number")
        elif t is str:
            if not isinstance(value, str):
                raise ValueError
        else:  # pragma: no cover - a method declared an unsupported type
            raise TypeError(f"{where}: unsupported hyperparameter type {t!r}")
    except ValueError:
        raise ConfigError(f"{where}: expected {t.__name__}, got {value!r}") from None
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, spec.choices))}")
    if spec.low is not None and value < spec.low:
        raise ConfigError(f"{where}: {value!r} is below the minimum {spec.low:g}")
    if spec.high is not None and value > spec.high:
        raise ConfigError(f"{where}: {value!r} is above the maximum {spec.high:g}")
    return value


def check_params(specs: list[ParamSpec], overrides: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """`overrides` typed and validated against `specs` (the defaults are checked against their
    bounds too): the keyword arguments for the dataclass."""
    by_name = {s.name: s for s in specs}
    kwargs = {}
    for key, value in overrides.items():
        if key not in by_name:
            raise ConfigError(
                f"{owner} has no hyperparameter {key!r}; it has: {', '.join(by_name) or 'none'}"
            )
        kwargs[key] = coerce(by_name[key], value, f"{owner}.{key}")
    for spec in specs:  # defaults must satisfy the declared bounds too
        if spec.name not in kwargs:
            coerce(spec, spec.default, f"{owner}.{spec.name} (default)")
    return kwargs


def build_params(cls: type, overrides: Mapping[str, Any], owner: str) -> Any:
    """An instance of dataclass `cls` with `overrides` applied and validated."""
    return cls(**check_params(param_specs(cls), overrides, owner))
