"""Views of the ``attributes`` section (several protected attributes): one row per attribute and one for
their intersection, computed once so the rich table, Markdown and HTML cannot disagree.

The section only exists when the real data has two or more attributes, so a
single-attribute report shows nothing new.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ddaudit.report._markup import _e, _section, _table
from ddaudit.report._rows import pct

ATTRIBUTE_HEADER = ["attributes", "groups", "accuracy", "worst cell", "DEO_M [gating interval]", "DEO_A",
                    "EOD (OvR)", "DPD (OvR)", "empty / small cells"]


def _mean(view: dict, name: str):
    return ((view.get("metrics") or {}).get(name) or {}).get("mean")


def _with_interval(view: dict, name: str) -> str:
    entry = (view.get("metrics") or {}).get(name) or {}
    bounds = entry.get("interval")
    shown = pct(entry.get("mean"))
    if isinstance(bounds, (list, tuple)) and len(bounds) == 2:
        shown += f" [{pct(bounds[0])}, {pct(bounds[1])}]"
    return shown


def _worst_cell(view: dict) -> str:
    """The lowest-accuracy non-empty (class, group) cell, named."""
    cells = [c for c in view.get("cells") or [] if c.get("accuracy") is not None]
    if not cells:
        return "n/a"
    worst = min(cells, key=lambda c: c["accuracy"])
    return f"{pct(worst['accuracy'])} (class {worst.get('class_name')}, {worst.get('group_name')})"


def _row(label: str, view: dict) -> list[str]:
    groups = view.get("per_group") or []
    present = sum(1 for g in groups if g.get("count"))
    return [
        label,
        f"{present}/{len(groups)}",
        pct(_mean(view, "accuracy")),
        _worst_cell(view),
        _with_interval(view, "deo_max"),
        pct(_mean(view, "deo_avg")),
        pct(_mean(view, "equalized_odds_difference")),
        pct(_mean(view, "demographic_parity_difference")),
        f"{len(view.get('empty_cells') or [])} / {len(view.get('small_cells') or [])}",
    ]


def attribute_rows(report: dict) -> list[list[str]]:
    """One row per attribute (its marginal view), then the intersection; empty without the section."""
    section = report.get("attributes") or {}
    if not section:
        return []
    rows = [_row(name, view) for name, view in (section.get("per_attribute") or {}).items()]
    if section.get("intersection"):
        rows.append(_row(" x ".join(section.get("attributes") or []) + " (intersection)", section["intersection"]))
    return rows


def _note(report: dict) -> str:
    section = report.get("attributes") or {}
    return ("Metrics in %; each attribute's row pools the others, the intersection row has one group per "
            f"combination of {', '.join(section.get('attributes') or [])}. The headline metrics above are the "
            "intersection's.")


def render_attributes(report: dict, console: Console) -> None:
    """The per-attribute and intersectional table on *console* (nothing without the section)."""
    rows = attribute_rows(report)
    if not rows:
        return
    table = Table(title="several protected attributes: each one, and their intersection", title_justify="left")
    for i, header in enumerate(ATTRIBUTE_HEADER):
        table.add_column(header, justify="left" if i in (0, 3) else "right")
    for row in rows:
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(f"[dim]{escape(_note(report))}[/dim]")


def attributes_markdown(report: dict) -> list[str]:
    """Markdown lines for the section (none without it)."""
    rows = attribute_rows(report)
    if not rows:
        return []
    lines = ["", "Several protected attributes (each one, and their intersection):", ""]
    lines.append("| " + " | ".join(ATTRIBUTE_HEADER) + " |")
    lines.append("|---|" + "|".join("---" if i == 3 else "---:" for i in range(1, len(ATTRIBUTE_HEADER))) + "|")
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    lines += ["", _note(report)]
    return lines


def attributes_html(report: dict) -> str:
    """The section as an HTML ``<section>`` ("" without it)."""
    rows = attribute_rows(report)
    if not rows:
        return ""
    return _section("attributes", "Several protected attributes",
                    _table(ATTRIBUTE_HEADER, rows, left=(0, 3)) + f"<p>{_e(_note(report))}</p>")
