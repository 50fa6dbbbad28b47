"""ddaudit: make dataset distillation fair, and prove it.

Audit a distilled set (:func:`ddaudit.audit`), make a matching loss fair
(:func:`ddaudit.fair_matching`), and gate CI on fairness thresholds.
"""

__version__ = "0.1.0"
