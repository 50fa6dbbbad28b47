"""The rich rendering shown on stderr after an audit."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ddaudit.report._attributes import render_attributes
from ddaudit.report._report_data import report_data
from ddaudit.report._rows import cell_matrix, headline_rows, interval_cells, interval_headers, interval_note, runtime_parts


def render_report(report, console: Console, *, show_cells: bool = True) -> None:
    """The headline table, the per-cell table and the warnings of *report*
    (an :class:`AuditReport` or its JSON dict) on *console*."""
    report = report_data(report)
    syn, real, settings = report.synthetic, report.real, report.settings
    proto = settings.get("protocol", {})
    title = (
        f"{syn.get('path')} ({syn.get('format')}, {syn.get('images')} images, ipc {syn.get('ipc')}) "
        f"on {real.get('name')}"
    )
    table = Table(title=escape(title), title_justify="left")
    table.add_column("metric (%)")
    table.add_column("distilled: mean ± std", justify="right")
    headers = interval_headers(report)
    if headers == ["CI"]:
        headers = ["95% CI" if settings.get("confidence", 0.95) == 0.95 else "CI"]
    for header in headers:
        table.add_column(header, justify="right")
    ref_names = list(report.reference)
    for name in ref_names:
        table.add_column(f"ref: {name.replace('_', ' ')}", justify="right")
    if report.amplification:
        table.add_column("amplification (ratio / diff)", justify="right")
    for row in headline_rows(report):
        cells = [row["label"], row["value"], *interval_cells(headers, row),
                 *(row["references"].get(n, "") for n in ref_names)]
        if report.amplification:
            cells.append(row["amplification"])
        table.add_row(*cells)
    console.print(table)
    note = interval_note(report)
    if note:
        console.print(f"[dim]{escape(note)}[/dim]")
    console.print(
        f"[dim]{settings.get('num_eval')} x {proto.get('model')} evaluators, protocol {proto.get('name')} "
        f"({proto.get('epochs')} epochs, aug {proto.get('aug')}), seed {settings.get('seed')}, "
        f"device {settings.get('device')}{_runtime(settings)}; final-epoch accuracy on {real.get('test_size')} real test images[/dim]"
    )
    classes, groups, grid = cell_matrix(report)
    if show_cells and classes and groups and len(groups) <= 12:
        cells = Table(title="accuracy % (count) per class x group", title_justify="left")
        cells.add_column("class")
        for g in groups:
            cells.add_column(str(g), justify="right")
        for name, row in zip(classes, grid):
            cells.add_row(str(name), *row)
        console.print(cells)
    render_attributes({"attributes": report.sections.get("attributes")}, console)
    recovery = report.sections.get("recovery") or {}
    if "weights" in recovery:
        w = recovery["weights"]
        console.print(
            f"weights: minority (bias-conflicting) rows get {w['ratio']:.1f}x the mean weight of majority rows "
            f"(AUC {w['auc']:.3f}, {w['n_conflicting']} vs {w['n_aligned']} rows)"
        )
    if "pseudo_groups" in recovery:
        console.print(f"pseudo-groups: adjusted Rand index {recovery['pseudo_groups']['ari']:.3f} against the true groups")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(warning)}", highlight=False, soft_wrap=True)


def _runtime(settings: dict) -> str:
    parts = runtime_parts(settings)
    return f" ({', '.join(parts)})" if parts else ""
