"""The audit report: one typed object whose methods are its views.

:func:`ddaudit.audit` returns an :class:`AuditReport`. Its JSON view,
:meth:`AuditReport.to_dict`, is the ``ddaudit.report/1`` schema that saved
reports have always had (every field keeps its name and meaning; fields are
only ever added). Gates never write into a report: their outcome travels beside
it and is merged only into a written view (``to_dict(gates=outcome)``,
``to_markdown(gates=outcome)``).

A new section (e.g. ``recovery`` from ``check --weights``, ``demo`` from the
demo, a composition probe) is added with :meth:`AuditReport.with_section`,
which returns a new report: sections appear as top-level keys of the JSON and
survive a round trip through :meth:`AuditReport.from_dict`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ddaudit import __version__
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
class AuditReport:
    """Everything one audit found, plus the predictions behind it.

    ``synthetic``
        The distilled set: ``path``, ``format``, ``images``, ``classes``,
        ``ipc``, ``soft_labels``, ``space``.
    ``real``
        The real dataset: ``name``, ``num_classes``, ``num_groups``,
        ``class_names``, ``group_names``, ``test_size``, ``train_size``.
    ``settings``
        How the evaluators were trained and measured (protocol, seeds, engine,
        device, bootstrap, versions).
    ``metrics``
        ``{name: {"mean", "std", "ci", "ci_method", "ci_models", "per_evaluator"}}``
        for every metric of the metric table (:data:`ddaudit.metrics.METRICS`).
    ``cells``
        One entry per (class, group) test cell: ``count``, ``accuracy``,
        ``accuracy_std``, ``small``.
    ``reference``
        ``{name: {"images", "metrics"}}`` for each real-data reference
        (``random_subset``, ``full``).
    ``amplification``
        ``{metric: {"ratio", "difference", "reference", "by_reference"}}``.
    ``warnings``
        One line each.
    ``per_class``, ``per_group``
        Each class's mean group gap and one-vs-rest rates; each group's pooled
        accuracy (``None`` in reports saved before they were kept).
    ``sections``
        Extra top-level sections (``recovery``, ``demo``, ...), JSON-ready.
    ``predictions``
        ``y_true``, ``group`` and each evaluator's predictions (not in the JSON;
        :meth:`save_predictions` writes them).
    """

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
    def from_dict(cls, data: dict) -> "AuditReport":
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

    # ------------------------------------------------------------ other views

    def to_markdown(self, gates: GateOutcomeLike | None = None) -> str:
        """Markdown for pull requests, step summaries and appendices."""
        from ddaudit.report._markdown import to_markdown

        return to_markdown(self, gates=gates)

    def render(self, console, *, show_cells: bool = True) -> None:
        """The rich tables a human reads on stderr."""
        from ddaudit.report._table import render_report

        render_report(self, console, show_cells=show_cells)

    def headline_rows(self) -> list[dict]:
        """One formatted row per metric (shared by every table view)."""
        from ddaudit.report._rows import headline_rows

        return headline_rows(self)

    # ------------------------------------------------------------ derived

    def with_section(self, name: str, value: Any) -> "AuditReport":
        """A copy with one more top-level section (the original is unchanged)."""
        if name in {f.name for f in fields(self)} or name in GATE_KEYS:
            raise ValueError(f"{name!r} is a field of the report, not a section")
        return replace(self, sections={**self.sections, name: value})

    def save_predictions(self, path: str | Path) -> None:
        """Write y_true, group and per-evaluator predictions so anyone can recompute."""
        np.savez_compressed(path, **self.predictions)


def as_report(report: AuditReport | dict) -> AuditReport:
    """An :class:`AuditReport` from either a report or its JSON dict."""
    return report if isinstance(report, AuditReport) else AuditReport.from_dict(report)
