"""ddaudit: make dataset distillation fair, and prove it.

Audit a distilled set (:func:`ddaudit.audit`), make a matching loss fair
(:func:`ddaudit.fair_matching`), and gate CI on fairness thresholds
(``ddaudit gate``). Heavy modules load on first use, so ``import ddaudit`` and
the gate command stay fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "audit": ("ddaudit.auditing", "audit"),
    "fair_matching": ("ddaudit.hooks", "fair_matching"),
    "group_context": ("ddaudit.hooks", "group_context"),
    "load_synthetic": ("ddaudit.io", "load_synthetic"),
    "load_real": ("ddaudit.data", "load_real"),
    "probe": ("ddaudit.probe", None),  # a callable module: ddaudit.probe(...) runs the probe
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        loaded = importlib.import_module(module)
        value = loaded if attribute is None else getattr(loaded, attribute)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ddaudit' has no attribute {name!r}")
