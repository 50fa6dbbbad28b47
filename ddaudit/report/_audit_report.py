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

from ddaudit.report._markdown import to_markdown as _to_markdown
from ddaudit.report._report_data import GATE_KEYS, SCHEMA, GateOutcomeLike, ReportData  # noqa: F401
from ddaudit.report._rows import headline_rows as _headline_rows
from ddaudit.report._table import render_report


class AuditReport(ReportData):
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

    # ------------------------------------------------------------ views

    def to_markdown(self, gates: GateOutcomeLike | None = None) -> str:
        """Markdown for pull requests, step summaries and appendices."""
        return _to_markdown(self, gates=gates)

    def render(self, console, *, show_cells: bool = True) -> None:
        """The rich tables a human reads on stderr."""
        render_report(self, console, show_cells=show_cells)

    def headline_rows(self) -> list[dict]:
        """One formatted row per metric (shared by every table view)."""
        return _headline_rows(self)


def as_report(report: AuditReport | dict) -> AuditReport:
    """An :class:`AuditReport` from either a report or its JSON dict."""
    return report if isinstance(report, AuditReport) else AuditReport.from_dict(report)
