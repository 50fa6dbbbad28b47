"""The headline rows every view shows, computed once so views cannot disagree.

Rows follow the metric table (:data:`ddaudit.metrics.METRICS`): its order, its
labels and its directions; a metric a report does not hold (e.g. one added
after the report was saved) has no row.
"""

from __future__ import annotations

from ddaudit.metrics import METRICS
from ddaudit.report._report_data import ReportData, report_data


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


def _interval_cell(bounds) -> str:
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return "n/a"
    return f"[{pct(bounds[0])}, {pct(bounds[1])}]"


def has_gating_intervals(report: ReportData | dict) -> bool:
    """Whether the report carries the intervals gates use (reports saved before them do not)."""
    report = report_data(report)
    return any(isinstance(entry, dict) and "interval" in entry for entry in report.metrics.values())


def interval_headers(report: ReportData | dict) -> list[str]:
    """Headers of the interval columns every table view shows, in the order of :func:`interval_cells`.

    With gating intervals: the interval gates use first, then the report's
    ``ci`` named for what it is (a test-set bootstrap, or a t-interval over
    evaluators, marked ``t``). A report saved before gating intervals keeps its
    single ``CI`` column.
    """
    report = report_data(report)
    if not has_gating_intervals(report):
        return ["CI"]
    level = f"{100 * report.settings.get('confidence', 0.95):g}%"
    return [f"gating {level} interval", f"{level} CI: bootstrap (t: evaluators only)"]


def interval_cells(headers: list[str], row: dict) -> list[str]:
    """A row's cells under *headers* (from :func:`interval_headers`)."""
    if len(headers) == 1:
        return [row["ci"]]
    marked = row["ci"] + (" t" if row["ci_method"] == "t" else "")
    return [row["interval"], marked]


def interval_note(report: ReportData | dict) -> str:
    """One sentence naming the gating intervals' method, or "" for a report without them."""
    report = report_data(report)
    methods = sorted({str(entry["interval_method"]) for entry in report.metrics.values()
                      if isinstance(entry, dict) and entry.get("interval") and entry.get("interval_method")})
    if not methods:
        return ""
    return (f"Gates decide on the gating interval ({'; '.join(methods)}); the bootstrap CI resamples "
            "the test set within (class, group) cells and gates nothing.")


def headline_rows(report: ReportData | dict) -> list[dict]:
    """One row per metric: distilled mean/std, gating interval, bootstrap CI, each reference, amplification."""
    report = report_data(report)
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
            "ci_method": summary.get("ci_method"),
            "interval": _interval_cell(summary.get("interval")),
            "interval_method": summary.get("interval_method"),
            "references": {name: pct(ref["metrics"].get(key, {}).get("mean"))
                           for name, ref in report.reference.items()},
            "amplification": _amplification_cell(report.amplification.get(key, {})),
        })
    return rows


def cell_matrix(report: ReportData | dict) -> tuple[list[str], list[str], list[list[str]]]:
    """(class names, group names, formatted accuracy/count per class x group)."""
    report = report_data(report)
    classes = report.real.get("class_names") or []
    groups = report.real.get("group_names") or []
    grid = [["-" for _ in groups] for _ in classes]
    for cell in report.cells:
        c, g = cell["class"], cell["group"]
        if c < len(classes) and g < len(groups):
            acc = cell.get("accuracy")
            grid[c][g] = f"{pct(acc)} ({cell['count']})" if acc is not None else f"empty ({cell['count']})"
    return classes, groups, grid


def runtime_parts(settings: dict) -> list[str]:
    """Threads per process, the CPU's kernel path and the torchrun process count: what, besides the seed,
    a report's figures depend on (:mod:`ddaudit.reproducibility`)."""
    parts = []
    threads = settings.get("threads")
    if threads:
        parts.append(f"{threads} thread{'s' if threads != 1 else ''}")
    if settings.get("cpu_path") and str(settings.get("device", "cpu")).startswith("cpu"):
        parts.append(f"CPU path {settings['cpu_path']}")
    count = settings.get("world_size") or 1
    if count > 1:
        parts.append(f"{count} processes")
    return parts
