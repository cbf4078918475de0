"""Importing the method packages registers every method (one file = one method), and the
task modules under bench/tasks/ register every kind of task."""

from __future__ import annotations

import importlib
import pkgutil

METHOD_PACKAGES = ("baselines", "methods")
TASK_PACKAGE = "bench.tasks"
_loaded = False
_tasks_loaded = False


def load_all_tasks() -> None:
    """Import every module of bench/tasks/ (each registers a kind of task), once. Task modules
    only declare (no torch at import time): profiles are parsed before anything heavy loads."""
    global _tasks_loaded
    if _tasks_loaded:
        return
    tasks = importlib.import_module(TASK_PACKAGE)
    for module in sorted(m.name for m in pkgutil.iter_modules(tasks.__path__) if not m.name.startswith("_")):
        importlib.import_module(f"{TASK_PACKAGE}.{module}")
    _tasks_loaded = True


def load_all_methods() -> None:
    """Import every module of `baselines/` and `methods/` (Retrain first), once."""
    global _loaded
    if _loaded:
        return
    load_all_tasks()
    for package_name in METHOD_PACKAGES:
        package = importlib.import_module(package_name)
        modules = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
        first = [m for m in getattr(package, "LOAD_FIRST", ()) if m in modules]
        for name in first + [m for m in modules if m not in first]:
            importlib.import_module(f"{package_name}.{name}")
    _loaded = True
