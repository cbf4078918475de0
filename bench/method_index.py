"""Every method's name, summary, scenario kinds, smoke settings and typed hyperparameters,
read from the method files' source without running them.

Importing a method file imports torch (seconds); `bench list`, `--help` and the checks of
`--methods` and `--set` must answer at once. A method file declares its method in literals:
`@register_method("FT", smoke={...})` on a dataclass whose fields are
`name: type = hp(default, low=..., doc=...)` (or a plain literal default). This module reads
those declarations with `ast`, following module-level constants (`choices=SCHEDULES`) and
dataclass base classes imported from the method packages. If any file declares its method
some other way, the index is built by importing every method instead: the same answer,
only slower. tests/test_method_index.py checks that the index equals the imported registry.

The index is in load order (the order `bench.plugins.load_all_methods` registers methods).
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib.util
import logging
import operator
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from bench.hparams import ParamSpec, check_params
from bench.registry import Registry
from bench.tasks import CLASSIFY, supports

log = logging.getLogger(__name__)

METHOD_PACKAGES = ("baselines", "methods")
SCENARIO_KINDS = ("random", "class")
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}
# Modules whose functions a declaration may call (field factories, search spaces): torch-free,
# so the reader evaluates such calls with literal arguments instead of giving up.
_CALLABLE_MODULES = ("bench.hparams", "bench.sgd_fields", "bench.adamw_fields")


@dataclass(frozen=True)
class MethodEntry:
    name: str
    module: str
    summary: str
    scenarios: tuple[str, ...]
    smoke: dict[str, Any] = field(default_factory=dict)
    specs: tuple[ParamSpec, ...] = ()
    tasks: tuple[str, ...] = (CLASSIFY,)

    def supports_task(self, task: str) -> bool:
        return supports(self.tasks, task)

    def param_specs(self) -> list[ParamSpec]:
        return list(self.specs)

    def check(self, overrides: Mapping[str, Any]) -> dict[str, Any]:
        """`overrides` validated as the method's own dataclass would (one-line ConfigError)."""
        return check_params(self.param_specs(), overrides, self.name)


class Unreadable(Exception):
    """A declaration this reader does not follow (the index then imports the methods)."""


# --------------------------------------------------------------------------- reading one module


class _Module:
    """One parsed source file: its top-level names, resolved lazily."""

    def __init__(self, reader: "_Reader", name: str, path: Path):
        self.reader, self.name, self.path = reader, name, path
        self.tree = ast.parse(path.read_text(), filename=str(path))
        self.assigned: dict[str, ast.expr] = {}
        self.imported: dict[str, tuple[str, str]] = {}  # local name -> (module, name)
        self.classes: dict[str, ast.ClassDef] = {}
        for stmt in self.tree.body:
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                self.assigned[stmt.targets[0].id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                self.assigned[stmt.target.id] = stmt.value
            elif isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.level == 0:
                for alias in stmt.names:
                    self.imported[alias.asname or alias.name] = (stmt.module, alias.name)
            elif isinstance(stmt, ast.ClassDef):
                self.classes[stmt.name] = stmt

    def lookup(self, name: str) -> tuple["_Module", str]:
        """The module that defines `name` (following `from x import name` within the method packages)."""
        if name in self.assigned or name in self.classes:
            return self, name
        if name in self.imported:
            module, original = self.imported[name]
            if module.split(".")[0] in METHOD_PACKAGES + ("bench",):  # constants such as bench.tasks.ANY_TASK
                return self.reader.module(module).lookup(original)
        raise Unreadable(f"{self.path}: cannot follow the name {name!r}")

    def value(self, node: ast.expr) -> Any:
        """A literal expression's value (constants, containers, names of constants, arithmetic)."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = [self.value(e) for e in node.elts]
            return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict) and None not in node.keys:
            return {self.value(k): self.value(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.Name):
            module, name = self.lookup(node.id)
            if name not in module.assigned:
                raise Unreadable(f"{self.path}: {node.id} is not a constant")
            return module.value(module.assigned[name])
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            operand = self.value(node.operand)
            return -operand if isinstance(node.op, ast.USub) else +operand
        ops = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.Pow: operator.pow}
        if isinstance(node, ast.BinOp) and type(node.op) in ops:
            return ops[type(node.op)](self.value(node.left), self.value(node.right))
        if isinstance(node, ast.Call):
            function = self.function(node.func)
            args = [self.value(a) for a in node.args]
            keywords = {k.arg: self.value(k.value) for k in node.keywords}
            if None in keywords:
                raise Unreadable(f"{self.path}:{node.lineno}: ** arguments in {ast.unparse(node)}")
            return function(*args, **keywords)
        raise Unreadable(f"{self.path}:{node.lineno}: not a literal: {ast.unparse(node)}")

    def function(self, node: ast.expr) -> Any:
        """A function of one of `_CALLABLE_MODULES` named by `node` (`hp`, `log`, `sgd.lr`, ...)."""
        if isinstance(node, ast.Name) and node.id in self.imported:
            module, name = self.imported[node.id]
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id in self.imported):
            package, alias = self.imported[node.value.id]
            module, name = f"{package}.{alias}", node.attr  # `from bench import sgd_fields as sgd`
        else:
            raise Unreadable(f"{self.path}: cannot follow the call {ast.unparse(node)}")
        if module not in _CALLABLE_MODULES:
            raise Unreadable(f"{self.path}: {ast.unparse(node)} is not a declaration helper")
        return getattr(importlib.import_module(module), name)

    def fields(self, cls: ast.ClassDef) -> dict[str, ParamSpec]:
        """The dataclass fields of `cls`, bases' first, as `dataclasses.fields` orders them."""
        fields: dict[str, ParamSpec] = {}
        for base in cls.bases:
            if not isinstance(base, ast.Name):
                raise Unreadable(f"{self.path}: base class {ast.unparse(base)} of {cls.name}")
            module, name = self.lookup(base.id)
            if name not in module.classes:
                raise Unreadable(f"{self.path}: base {base.id} of {cls.name} is not a class")
            base_cls = module.classes[name]
            if _is_dataclass(base_cls):
                fields.update(module.fields(base_cls))
            elif any(isinstance(s, ast.AnnAssign) for s in base_cls.body):
                raise Unreadable(f"{self.path}: base {base.id} of {cls.name} has annotations but is no dataclass")
        for stmt in cls.body:
            if not isinstance(stmt, ast.AnnAssign):
                continue
            if not isinstance(stmt.target, ast.Name):
                raise Unreadable(f"{self.path}: field of {cls.name}")
            annotation = stmt.annotation
            if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
                annotation = ast.parse(annotation.value, mode="eval").body
            if _names(annotation, "ClassVar"):
                continue
            type_name = annotation.id if isinstance(annotation, ast.Name) else None
            if type_name not in _TYPES or stmt.value is None:
                raise Unreadable(f"{self.path}: field {cls.name}.{stmt.target.id}")
            fields[stmt.target.id] = self._spec(stmt.target.id, _TYPES[type_name], stmt.value)
        return fields

    def _spec(self, name: str, type_: type, node: ast.expr) -> ParamSpec:
        value = self.value(node)  # hp(...) and the shared field factories give a dataclasses.Field
        if isinstance(value, dataclasses.Field):
            meta = value.metadata
            return ParamSpec(name, type_, value.default, meta.get("low"), meta.get("high"), meta.get("choices"),
                             meta.get("doc", ""), search=meta.get("search"), main=bool(meta.get("main", False)))
        return ParamSpec(name, type_, value, None, None, None, "")

    def entry(self, cls: ast.ClassDef, decorator: ast.Call) -> MethodEntry:
        if len(decorator.args) != 1:
            raise Unreadable(f"{self.path}: register_method on {cls.name} takes the method's name")
        keywords = {k.arg: self.value(k.value) for k in decorator.keywords}
        if None in keywords or set(keywords) - {"scenarios", "smoke", "tasks"}:
            raise Unreadable(f"{self.path}: register_method arguments on {cls.name}")
        doc = ast.get_docstring(cls, clean=False)
        if not doc or not _is_dataclass(cls):
            raise Unreadable(f"{self.path}: {cls.name} needs a docstring and @dataclass")
        return MethodEntry(
            name=self.value(decorator.args[0]), module=self.name, summary=doc.strip().splitlines()[0],
            scenarios=tuple(keywords.get("scenarios", SCENARIO_KINDS)), smoke=dict(keywords.get("smoke") or {}),
            specs=tuple(self.fields(cls).values()), tasks=tuple(keywords.get("tasks", (CLASSIFY,))),
        )


def _names(node: ast.expr, name: str) -> bool:
    """Whether `node` is `name`, `x.name`, `name(...)` or `name[...]`."""
    if isinstance(node, (ast.Call, ast.Subscript)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return (isinstance(node, ast.Name) and node.id == name) or (isinstance(node, ast.Attribute) and node.attr == name)


def _is_dataclass(cls: ast.ClassDef) -> bool:
    return any(_names(d, "dataclass") for d in cls.decorator_list)


class _Reader:
    """Reads the method packages in the order importing them registers methods."""

    def __init__(self):
        self.modules: dict[str, _Module] = {}
        self.done: set[str] = set()
        self.entries: list[MethodEntry] = []

    def module(self, name: str) -> _Module:
        if name not in self.modules:
            spec = importlib.util.find_spec(name)  # finds the file; executes nothing of the module
            if spec is None or spec.origin is None or not spec.origin.endswith(".py"):
                raise Unreadable(f"no source file for {name}")
            self.modules[name] = _Module(self, name, Path(spec.origin))
        return self.modules[name]

    def load(self, name: str) -> None:
        """Register `name`'s methods as importing it would: its imports of method modules first."""
        if name in self.done:
            return
        self.done.add(name)
        module = self.module(name)
        for stmt in module.tree.body:
            if isinstance(stmt, ast.ImportFrom) and stmt.module and stmt.module.split(".")[0] in METHOD_PACKAGES:
                if stmt.module not in METHOD_PACKAGES:
                    self.load(stmt.module)
            elif isinstance(stmt, ast.Import) and any(a.name.split(".")[0] in METHOD_PACKAGES for a in stmt.names):
                raise Unreadable(f"{module.path}: plain import of a method module")
            elif isinstance(stmt, ast.ClassDef):
                for decorator in stmt.decorator_list:
                    if isinstance(decorator, ast.Call) and _names(decorator.func, "register_method"):
                        self.entries.append(module.entry(stmt, decorator))
            elif (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
                  and _names(stmt.value.func, "register_preset")):
                self.entries.append(self.preset(module, stmt.value))

    def preset(self, module: _Module, call: ast.Call) -> MethodEntry:
        """`register_preset(name, base, defaults, summary=..., smoke=...)`: the base's entry, other defaults."""
        if len(call.args) != 3:
            raise Unreadable(f"{module.path}: register_preset takes name, base and defaults")
        name, base, defaults = (module.value(a) for a in call.args)
        keywords = {k.arg: module.value(k.value) for k in call.keywords}
        if None in keywords or set(keywords) - {"summary", "smoke"}:
            raise Unreadable(f"{module.path}: register_preset arguments of {name}")
        entry = next((e for e in self.entries if e.name == base), None)
        if entry is None:
            raise Unreadable(f"{module.path}: preset {name} of {base}, which is not declared before it")
        specs = tuple(dataclasses.replace(s, default=defaults[s.name]) if s.name in defaults else s for s in entry.specs)
        smoke = keywords.get("smoke")
        return dataclasses.replace(entry, name=name, summary=keywords["summary"], specs=specs,
                                   smoke=dict(entry.smoke if smoke is None else smoke))

    def package(self, name: str) -> None:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations or spec.origin is None:
            raise Unreadable(f"method package {name} not found")
        init = _Module(self, name, Path(spec.origin))
        first = tuple(init.value(init.assigned["LOAD_FIRST"])) if "LOAD_FIRST" in init.assigned else ()
        modules = sorted(m.name for m in pkgutil.iter_modules(spec.submodule_search_locations) if not m.name.startswith("_"))
        for module in [m for m in first if m in modules] + [m for m in modules if m not in first]:
            self.load(f"{name}.{module}")


def read_sources() -> list[MethodEntry]:
    """Every method's entry, read from source (raises Unreadable where a declaration is not literal)."""
    reader = _Reader()
    for package in METHOD_PACKAGES:
        reader.package(package)
    return reader.entries


def from_registry() -> list[MethodEntry]:
    """Every method's entry, from the imported registry (imports torch and every method)."""
    from bench.method import METHODS
    from bench.plugins import load_all_methods

    load_all_methods()
    return [_entry(METHODS.get(n)) for n in METHODS]


@functools.lru_cache(maxsize=1)
def _declared() -> tuple[MethodEntry, ...]:
    try:
        return tuple(read_sources())
    except (Unreadable, SyntaxError, OSError) as exc:
        log.debug("method index from the imported registry: %s", exc)
        return tuple(from_registry())


def _entry(info: Any) -> MethodEntry:
    return MethodEntry(info.name, info.cls.__module__, info.summary, tuple(info.scenarios), dict(info.smoke),
                       tuple(info.param_specs()), tuple(getattr(info, "tasks", (CLASSIFY,))))


def method_index() -> Registry[MethodEntry]:
    """Name -> MethodEntry for every method, in load order; unknown names are one-line ConfigErrors.
    Methods registered at run time outside the method packages (once bench.method is loaded) follow."""
    index: Registry[MethodEntry] = Registry("method")
    for entry in _declared():
        index.add(entry.name, entry)
    registry = sys.modules.get("bench.method")
    if registry is not None:
        for name in registry.METHODS:
            if name not in index:
                index.add(name, _entry(registry.METHODS.get(name)))
    return index


def resolve_names(patterns: list[str] | None) -> list[str]:
    """Method names matching `patterns` (globs allowed), in load order; every method when None."""
    index = method_index()
    if patterns is None:
        return list(index)
    chosen: list[str] = []
    for pattern in patterns:
        matched = index.names(pattern) if any(ch in pattern for ch in "*?[") else [index.get(pattern).name]
        if not matched:
            index.get(pattern)  # raises with the known names
        chosen += [m for m in matched if m not in chosen]
    return [n for n in index if n in chosen]


@functools.lru_cache(maxsize=1)
def model_index() -> dict[str, str]:
    """Model name -> the first line of its docstring, read from bench/models.py's
    `@MODELS.decorator("name")` definitions (importing it would import torch and torchvision)."""
    try:
        module = _Reader().module("bench.models")
        models = {}
        for stmt in module.tree.body:
            if isinstance(stmt, (ast.FunctionDef, ast.ClassDef)):
                for d in stmt.decorator_list:
                    if isinstance(d, ast.Call) and _names(d.func, "decorator") and len(d.args) == 1:
                        doc = ast.get_docstring(stmt, clean=False) or ""
                        models[module.value(d.args[0])] = doc.strip().splitlines()[0] if doc.strip() else ""
        return models
    except (Unreadable, SyntaxError, OSError) as exc:
        log.debug("model index from the imported registry: %s", exc)
        from bench.models import MODELS

        return {n: ((MODELS.get(n).__doc__ or "").strip().splitlines() or [""])[0] for n in MODELS}
