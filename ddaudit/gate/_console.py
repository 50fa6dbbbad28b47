"""What a human sees on stderr: the gate table and one verdict line.

Plain (no animation, no redrawing) by the rule of :func:`ddaudit._output.is_plain_output`:
logs must read the same as the screen.
"""

from __future__ import annotations

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ddaudit._output import is_plain_output  # noqa: F401 - the one plain-output rule, re-exported
from ddaudit.errors import EXIT_GATE_FAILED, EXIT_INCONCLUSIVE
from ddaudit.gate._evaluate import FAIL, INCONCLUSIVE, NOT_GATED, PASS, GateOutcome

OUTCOME_STYLE = {PASS: "green", FAIL: "bold red", INCONCLUSIVE: "yellow", NOT_GATED: "dim"}
NOT_GATED_MESSAGE = "no fairness gate set: pass thresholds such as --max-deo-max 0.3, or configure [tool.ddaudit]"
INCONCLUSIVE_HINT = (
    "exit 3 (inconclusive): the data cannot tell; the notes say how much more test data or how many more "
    "evaluators would settle it, or decide with --inconclusive pass|fail"
)


def gate_table(outcome: GateOutcome, title: str | None = None) -> Table:
    table = Table(title=None if title is None else Text(title), box=box.SIMPLE_HEAD, title_justify="left")
    for header, justify in (("gate", "left"), ("metric", "left"), ("value [interval]", "right"),
                            ("required", "left"), ("result", "left"), ("note", "left")):
        table.add_column(header, justify=justify, overflow="fold")
    for result in outcome.results:
        table.add_row(
            Text(result.flag),
            Text(f"{result.metric} ({result.basis})"),
            Text(result.shown_value()),
            Text(f"{result.operator} {result.threshold:g}"),
            Text(result.outcome, style=OUTCOME_STYLE[result.outcome]),
            Text(result.reason),
        )
    return table


def render_gates(console: Console, outcome: GateOutcome, label: str) -> None:
    """The table (when any gate is set) and a verdict line with the exit code it leads to."""
    if not outcome.results:
        console.print(Text(f"{label}: {NOT_GATED_MESSAGE}", style=OUTCOME_STYLE[NOT_GATED]))
        return
    console.print(gate_table(outcome, title=f"fairness gates: {label}"))
    counts = ", ".join(f"{outcome.count(kind)} {kind}" for kind in (FAIL, INCONCLUSIVE, PASS))
    verdict = Text(f"gates {outcome.status.upper()} ({counts}) -> exit {outcome.exit_code}",
                   style=OUTCOME_STYLE[outcome.status])
    console.print(verdict)
    if outcome.exit_code == EXIT_INCONCLUSIVE:
        console.print(Text(INCONCLUSIVE_HINT))
    elif outcome.status in (FAIL, INCONCLUSIVE) and outcome.exit_code not in (EXIT_GATE_FAILED, EXIT_INCONCLUSIVE):
        console.print(Text("exit 0 despite the verdict: --exit-zero or --inconclusive pass is set"))
