"""A Markdown rendering for pull requests, step summaries and papers' appendices."""

from __future__ import annotations

from ddaudit.errors import NOT_GATED
from ddaudit.report._attacks import attacks_markdown
from ddaudit.report._attributes import attributes_markdown
from ddaudit.report._report_data import report_data
from ddaudit.report._rows import cell_matrix, headline_rows, interval_cells, interval_headers, interval_note, runtime_parts


def _table(header: list[str], rows: list[list[str]], align_right_from: int = 1) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join("---" if i < align_right_from else "---:" for i in range(len(header))) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def _gate_value(gate: dict) -> str:
    """The estimate and its gating interval when the gate has one, else the compared value."""
    interval, estimate = gate.get("interval"), gate.get("estimate")
    if isinstance(interval, list) and len(interval) == 2 and estimate is not None:
        return f"{estimate:.4g} [{interval[0]:.4g}, {interval[1]:.4g}]"
    return str(gate.get("value"))


def to_markdown(report, gates=None) -> str:
    """*report* (an :class:`AuditReport` or its JSON dict) as Markdown; *gates*, a
    :class:`ddaudit.gate.GateOutcome`, adds the status and a table of gates (a gated
    JSON dict shows the gates it recorded)."""
    recorded = report if isinstance(report, dict) and gates is None else {}
    recorded = gates.to_dict() if gates is not None else recorded
    status, gate_rows = recorded.get("status", NOT_GATED), recorded.get("gates") or []
    report = report_data(report)
    syn, real, settings = report.synthetic, report.real, report.settings
    proto = settings.get("protocol", {})
    refs = list(report.reference)
    lines = [
        f"## ddaudit: `{syn.get('path')}` on {real.get('name')}",
        "",
        f"Status: **{status}**. {syn.get('images')} synthetic images ({syn.get('format')}, "
        f"ipc {syn.get('ipc')}); {settings.get('num_eval')} x {proto.get('model')} evaluators, protocol "
        f"{proto.get('name')} ({proto.get('epochs')} epochs, aug {proto.get('aug')}), seed {settings.get('seed')}{_runtime_note(settings)}.",
        "",
    ]
    headers = interval_headers(report)
    header = ["metric (%)", "distilled (mean ± std)", *headers, *[f"ref: {r}" for r in refs]]
    if report.amplification:
        header.append("amplification (ratio / diff)")
    rows = []
    for row in headline_rows(report):
        cells = [row["label"], row["value"], *interval_cells(headers, row), *(row["references"].get(r, "") for r in refs)]
        if report.amplification:
            cells.append(row["amplification"])
        rows.append(cells)
    lines += _table(header, rows)
    if interval_note(report):
        lines += ["", interval_note(report)]
    classes, groups, grid = cell_matrix(report)
    if classes and groups:
        lines += ["", "Accuracy % (test count) per class x group:", ""]
        lines += _table(["class", *map(str, groups)], [[str(c), *r] for c, r in zip(classes, grid)])
    lines += attributes_markdown({"attributes": report.sections.get("attributes")})
    lines += attacks_markdown(report.to_dict())
    if gate_rows:
        lines += ["", "Gates:", ""]
        lines += _table(
            ["gate", "value [interval]", "threshold", "result", "why"],
            [[g.get("name"), _gate_value(g), f"{g.get('operator')} {g.get('threshold')}",
              "inconclusive" if g.get("inconclusive") else ("pass" if g.get("passed") else "FAIL"),
              str(g.get("reason") or "").replace("|", "\\|")]
             for g in gate_rows],
        )
    if report.warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in report.warnings]
    return "\n".join(lines) + "\n"


def _runtime_note(settings: dict) -> str:
    parts = runtime_parts(settings)
    return f", {', '.join(parts)}" if parts else ""
