"""Names a package exports without importing their modules until first use.

``import ddaudit``, ``ddaudit.metrics`` and ``ddaudit.report`` stay light (no
torch, fairlearn or matplotlib) so ``ddaudit gate`` starts in a fraction of a
second; heavy names load when first touched.
"""

from __future__ import annotations

import importlib
from typing import Callable, Mapping


def lazy_getattr(package: str, modules: Mapping[str | None, tuple[str, ...]]) -> Callable[[str], object]:
    """A module ``__getattr__`` for *package*: ``modules[module]`` lists the names that
    *module* (relative to *package* when it starts with a dot) defines, imported on first
    access; names listed under ``None`` are submodules of *package*."""
    names = {name: module for module, listed in modules.items() for name in listed}

    def __getattr__(name: str):
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        if names[name] is None:
            return importlib.import_module(f"{package}.{name}")
        value = getattr(importlib.import_module(names[name], package), name)
        setattr(importlib.import_module(package), name, value)
        return value

    return __getattr__
