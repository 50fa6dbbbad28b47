"""The audit report and its views: a rich table for humans, JSON, Markdown, files.

:class:`AuditReport` is what :func:`ddaudit.audit` returns; ``to_dict()`` is
its ``ddaudit.report/1`` JSON, ``to_markdown()`` and ``render()`` its human
views. Every function here only reads a report.

The pictures and the HTML page need torch and matplotlib: they load on first
use, so ``ddaudit gate`` (which reads reports) never imports torch.
"""


from ddaudit._lazy import lazy_getattr
from ddaudit.report._attacks import attacks_markdown, render_attacks
from ddaudit.report._attributes import attribute_rows, attributes_html, attributes_markdown, render_attributes
from ddaudit.report._audit_report import SCHEMA, AuditReport, as_report
from ddaudit.report._composition import composition_markdown, composition_rows, composition_summary, render_composition
from ddaudit.report._files import check_writable, json_ready, write_json, write_text
from ddaudit.report._markdown import to_markdown
from ddaudit.report._table import render_report

_LAZY = {
    "ddaudit.report._plots": ("PictureInputs", "render_pictures", "save_figures"),
    "ddaudit.report._html": ("to_html",),
}

__getattr__ = lazy_getattr(__name__, _LAZY)


__all__ = [
    "PictureInputs",
    "SCHEMA",
    "AuditReport",
    "as_report",
    "attacks_markdown",
    "attribute_rows",
    "attributes_html",
    "attributes_markdown",
    "check_writable",
    "composition_markdown",
    "composition_rows",
    "composition_summary",
    "json_ready",
    "render_attacks",
    "render_attributes",
    "render_composition",
    "render_pictures",
    "render_report",
    "to_html",
    "save_figures",
    "to_markdown",
    "write_json",
    "write_text",
]
