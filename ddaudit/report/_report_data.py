"""The audit report's data: its fields and its JSON round trip, below every view.

The views (Markdown, rich tables, headline rows) read this; :class:`~._audit_report.AuditReport`
adds them as methods on top, so imports run one way: data <- views <- report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol, Self

import numpy as np

from ddaudit._version import __version__
from ddaudit.errors import NOT_GATED
from ddaudit.report._files import json_ready

#: The schema string every saved report carries.
SCHEMA = "ddaudit.report/1"
#: Keys of the JSON that hold a gate outcome rather than the audit itself.
GATE_KEYS = ("status", "gates", "gate_settings")


class GateOutcomeLike(Protocol):
    """What the views read from a gate outcome (:class:`ddaudit.gate.GateOutcome`);
    the report never imports the gates."""

    status: str

    def to_dict(self) -> dict:
        """``{"status", "gates": [...], "gate_settings": {...}}``."""


@dataclass
class ReportData:
    """The fields of an :class:`~ddaudit.report.AuditReport` and its JSON round trip (no views)."""

    synthetic: dict
    real: dict
    settings: dict
    metrics: dict[str, dict]
    cells: list[dict]
    reference: dict[str, dict] = field(default_factory=dict)
    amplification: dict[str, dict] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    per_class: list[dict] | None = None
    per_group: list[dict] | None = None
    sections: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, np.ndarray] = field(default_factory=dict, repr=False, compare=False)
    schema: str = SCHEMA
    ddaudit_version: str = __version__

    # ------------------------------------------------------------ JSON view

    def to_dict(self, gates: GateOutcomeLike | None = None) -> dict:
        """The ``ddaudit.report/1`` JSON (a fresh, JSON-ready dict: NaN becomes ``None``).

        With *gates* (a :class:`ddaudit.gate.GateOutcome`) the JSON records
        their ``gates``, ``status`` and ``gate_settings``; without, ``status``
        is ``"not_gated"`` and ``gates`` is empty.
        """
        out: dict[str, Any] = {
            "schema": self.schema,
            "ddaudit_version": self.ddaudit_version,
            "status": NOT_GATED,
            "synthetic": self.synthetic,
            "real": self.real,
            "settings": self.settings,
            "metrics": self.metrics,
            "cells": self.cells,
            "reference": self.reference,
            "amplification": self.amplification,
            "warnings": self.warnings,
            "gates": [],
        }
        if self.per_class is not None:
            out["per_class"] = self.per_class
        if self.per_group is not None:
            out["per_group"] = self.per_group
        out.update((name, value) for name, value in self.sections.items() if name not in out)
        if gates is not None:
            out.update(gates.to_dict())
        return json_ready(out)  # rebuilds every dict and list: the caller owns the result

    @classmethod
    def from_dict(cls, data: dict) -> Self:
        """A report read back from its JSON (e.g. a saved ``check --json`` file).

        A saved gate outcome (``status``, ``gates``, ``gate_settings``) is left
        out: gates are decided again on the report. Unknown top-level keys
        become :attr:`sections`. The structure is assumed valid
        (:func:`ddaudit.gate.load_report` checks a file first).
        """
        data = copy.deepcopy(data)
        known = {f.name for f in fields(cls)} - {"sections", "predictions"}
        values = {name: data[name] for name in known if name in data}
        sections = {k: v for k, v in data.items() if k not in known and k not in GATE_KEYS}
        for name, empty in (("synthetic", {}), ("real", {}), ("settings", {}), ("metrics", {}), ("cells", [])):
            values.setdefault(name, empty)
        return cls(**values, sections=sections)

    @property
    def report(self) -> dict:
        """The JSON dict, for code written when :func:`ddaudit.audit` returned ``AuditResult.report``."""
        return self.to_dict()

    # ------------------------------------------------------------ derived

    def with_section(self, name: str, value: Any) -> Self:
        """A copy with one more top-level section (the original is unchanged)."""
        if name in {f.name for f in fields(self)} or name in GATE_KEYS:
            raise ValueError(f"{name!r} is a field of the report, not a section")
        return replace(self, sections={**self.sections, name: value})

    def save_predictions(self, path: str | Path) -> None:
        """Write y_true, group and per-evaluator predictions so anyone can recompute."""
        np.savez_compressed(path, **self.predictions)


def report_data(report: ReportData | dict) -> ReportData:
    """*report* itself, or its JSON dict read back: what the views read."""
    return report if isinstance(report, ReportData) else ReportData.from_dict(report)
