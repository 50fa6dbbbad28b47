"""GitHub Actions output: annotations on the run and a table in the step summary.

Annotations are workflow commands (``::error title=...::message``) written as
single raw lines; the runner reads them from stderr as well as stdout, so they
never mix with machine output on stdout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence, TextIO

from ddaudit.gate._evaluate import FAIL, INCONCLUSIVE, GateOutcome

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"
STATUS_BADGE = {"pass": "PASS", "fail": "FAIL", "inconclusive": "INCONCLUSIVE", "not_gated": "NOT GATED"}


def in_github_actions(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation_lines(label: str, outcome: GateOutcome, file: str | None = None) -> list[str]:
    """``::error`` for each failed gate, ``::warning`` for each inconclusive one."""
    lines = []
    for result in outcome.results:
        if result.outcome not in (FAIL, INCONCLUSIVE):
            continue
        command = "error" if result.outcome == FAIL else "warning"
        properties = [f"title={escape_property(f'ddaudit {result.key} ({label})')}"]
        if file:
            properties.insert(0, f"file={escape_property(file)}")
        lines.append(f"::{command} {','.join(properties)}::{escape_data(result.sentence())}")
    return lines


def summary_markdown(suites: Sequence[tuple[str, GateOutcome]]) -> str:
    """A Markdown section per report: verdict, then one table row per gate."""
    parts = []
    for label, outcome in suites:
        parts.append(f"### ddaudit fairness gates: {STATUS_BADGE[outcome.status]} (`{_cell(label)}`)\n")
        if not outcome.results:
            parts.append("No thresholds were set.\n")
            continue
        parts.append("| Gate | Metric | Value [interval] | Required | Result | Note |")
        parts.append("|---|---|---:|---|---|---|")
        for result in outcome.results:
            parts.append(
                f"| `{result.flag}` | {result.metric} ({result.basis}) | {result.shown_value()} | "
                f"{_cell(result.operator)} {result.threshold:g} | {result.outcome} | {_cell(result.reason)} |"
            )
        parts.append("")
    return "\n".join(parts) + "\n"


def emit_github(
    suites: Sequence[tuple[str, GateOutcome, str | None]],
    stream: TextIO,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """Write annotations to *stream* and append the summary to ``$GITHUB_STEP_SUMMARY``.

    *suites* holds ``(label, outcome, annotated_file)``; returns the summary path when written.
    """
    environ = os.environ if environ is None else environ
    for label, outcome, file in suites:
        for line in annotation_lines(label, outcome, file):
            stream.write(line + "\n")
    stream.flush()
    target = environ.get(SUMMARY_ENV)
    if not target:
        return None
    path = Path(target)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(summary_markdown([(label, outcome) for label, outcome, _ in suites]))
    return path


def _cell(text: str) -> str:
    """Table-safe text: pipes and newlines would break the Markdown row."""
    return text.replace("|", "\\|").replace("\n", " ").replace("`", "'")
