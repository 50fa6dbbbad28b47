"""ddaudit: make dataset distillation fair, and prove it.

Audit a distilled set (:func:`ddaudit.audit`), make a matching loss fair
(:func:`ddaudit.fair_matching`), and gate CI on fairness thresholds
(``ddaudit gate``). Heavy modules load on first use, so ``import ddaudit`` and
the gate command stay fast.
"""

from __future__ import annotations

from ddaudit._lazy import lazy_getattr
from ddaudit._version import __version__

_LAZY = {
    "ddaudit.auditing": ("audit",),
    "ddaudit.hooks": ("fair_matching", "group_context"),
    "ddaudit.io": ("load_synthetic",),
    "ddaudit.data": ("load_real",),
    None: ("probe",),  # a callable module: ddaudit.probe(...) runs the probe
}

__all__ = ["__version__", *(name for names in _LAZY.values() for name in names)]

__getattr__ = lazy_getattr(__name__, _LAZY)
