"""Views of an audit report: a rich table for humans, JSON, Markdown, files.

The report is a plain dict (schema ``ddaudit.report/1``); every function here
only reads it.
"""

from ddaudit.report._composition import composition_markdown, composition_rows, composition_summary, render_composition
from ddaudit.report._files import check_writable, json_ready, write_json, write_text
from ddaudit.report._html import to_html
from ddaudit.report._markdown import to_markdown
from ddaudit.report._plots import PictureInputs, render_pictures, save_figures
from ddaudit.report._table import render_report

__all__ = [
    "PictureInputs",
    "check_writable",
    "composition_markdown",
    "composition_rows",
    "composition_summary",
    "json_ready",
    "render_composition",
    "render_pictures",
    "render_report",
    "to_html",
    "save_figures",
    "to_markdown",
    "write_json",
    "write_text",
]
