"""Typed hyperparameters: declared as dataclass fields, parsed from TOML or the CLI.

A method's hyperparameters are the fields of its dataclass. `hp(...)` adds a
range or a set of allowed values and a one-line description; `build_params`
turns overrides (from a profile or `--set NAME.key=value`) into a validated
instance, with a one-line `ConfigError` for an unknown key or a bad value.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, Mapping

from bench.errors import ConfigError


def hp(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[Any, ...] | None = None,
    doc: str = "",
) -> Any:
    """A hyperparameter field: default, optional closed range or choices, description."""
    meta = {"low": low, "high": high, "choices": choices, "doc": doc}
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

    def describe(self) -> str:
        bounds = ""
        if self.choices:
            bounds = " one of " + "|".join(map(str, self.choices))
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            bounds = f" in [{lo}, {hi}]"
        doc = f"  {self.doc}" if self.doc else ""
        return f"{self.name}: {self.type.__name__} = {self.default!r}{bounds}{doc}"


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
