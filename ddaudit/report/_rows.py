"""The headline rows every view shows, computed once so views cannot disagree.

Rows follow the metric table (:data:`ddaudit.metrics.METRICS`): its order, its
labels and its directions; a metric a report does not hold (e.g. one added
after the report was saved) has no row.
"""

from __future__ import annotations

from ddaudit.metrics import METRICS
from ddaudit.report._audit_report import AuditReport, as_report


def pct(value) -> str:
    """Fractions are shown as percentages with two decimals, the field's convention."""
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def _amplification_cell(amp: dict) -> str:
    if not amp:
        return ""
    ratio, difference = amp.get("ratio"), amp.get("difference")
    if difference is None:
        return "n/a"
    return f"{'-' if ratio is None else f'x{ratio:.2f}'} / {100 * difference:+.2f}"


def headline_rows(report: AuditReport | dict) -> list[dict]:
    """One row per metric: distilled mean/std/CI, each reference, amplification."""
    report = as_report(report)
    rows = []
    for key, metric in METRICS.items():
        summary = report.metrics.get(key)
        if summary is None:
            continue
        ci = summary.get("ci") or [None, None]
        rows.append({
            "key": key,
            "label": metric.label,
            "better": metric.direction,
            "value": f"{pct(summary.get('mean'))} ± {pct(summary.get('std'))}",
            "ci": f"[{pct(ci[0])}, {pct(ci[1])}]",
            "references": {name: pct(ref["metrics"].get(key, {}).get("mean"))
                           for name, ref in report.reference.items()},
            "amplification": _amplification_cell(report.amplification.get(key, {})),
        })
    return rows


def cell_matrix(report: AuditReport | dict) -> tuple[list[str], list[str], list[list[str]]]:
    """(class names, group names, formatted accuracy/count per class x group)."""
    report = as_report(report)
    classes = report.real.get("class_names") or []
    groups = report.real.get("group_names") or []
    grid = [["-" for _ in groups] for _ in classes]
    for cell in report.cells:
        c, g = cell["class"], cell["group"]
        if c < len(classes) and g < len(groups):
            acc = cell.get("accuracy")
            grid[c][g] = f"{pct(acc)} ({cell['count']})" if acc is not None else f"empty ({cell['count']})"
    return classes, groups, grid
