"""Importing the method packages registers every method (one file = one method)."""

from __future__ import annotations

import importlib
import pkgutil

METHOD_PACKAGES = ("baselines", "methods")
_loaded = False


def load_all_methods() -> None:
    """Import every module of `baselines/` and `methods/` (Retrain first), once."""
    global _loaded
    if _loaded:
        return
    for package_name in METHOD_PACKAGES:
        package = importlib.import_module(package_name)
        modules = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_"))
        first = [m for m in getattr(package, "LOAD_FIRST", ()) if m in modules]
        for name in first + [m for m in modules if m not in first]:
            importlib.import_module(f"{package_name}.{name}")
    _loaded = True
