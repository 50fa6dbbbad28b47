"""``ddaudit gate``: decide fairness gates on saved reports, without training anything."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ddaudit.cli import _gate_options as gopt
from ddaudit.cli._common import handle_errors, make_console
from ddaudit.errors import ConfigError

GATE_HELP = (
    "Re-evaluate fairness gates on reports saved by `ddaudit check --json`.\n\n"
    "Takes a fraction of a second: nothing is trained. Thresholds come from the flags, or from "
    "ddaudit.toml / pyproject.toml \\[tool.ddaudit] (flags win). Several REPORTs are gated together, "
    "as a pre-commit hook passes them.\n\n"
    "Exit codes: 0 all gates pass (or none set), 1 a gate failed, 2 usage, configuration or input error, "
    "3 inconclusive (see --inconclusive)."
)

JSON_WITH_SEVERAL_MESSAGE = "--json writes one report; give a single REPORT or drop --json"


def register(app: typer.Typer) -> None:
    app.command("gate", help=GATE_HELP, cls=gopt.GateCommand)(handle_errors(gopt.with_gate_options(gate)))


def gate(
    reports: Annotated[list[Path], typer.Argument(help="Report JSON file(s) from `ddaudit check --json`.", show_default=False)],
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", show_default=False,
        help="Write the report with its new gates and status as JSON ('-' for stdout).",
    )] = None,
    force: gopt.Force = False,
    *,
    gates: gopt.GateArgs,
) -> None:
    from ddaudit.gate import evaluate_gates, load_report
    from ddaudit.preflight import check_outputs
    from ddaudit.report import AuditReport, json_ready, write_json

    to_stdout = json_out is not None and str(json_out) == "-"
    if json_out is not None and len(reports) > 1:
        raise ConfigError(JSON_WITH_SEVERAL_MESSAGE)
    check_outputs({"--json": json_out, "--junit": gates.junit}, force=force, inputs=reports)

    loaded = [(path, AuditReport.from_dict(load_report(path))) for path in reports]
    console = make_console()
    suites = []
    for path, report in loaded:
        outcome = evaluate_gates(report, gates.settings)
        label = gopt.report_label(report, fallback=str(path))
        suites.append((f"{label} ({path})" if label != str(path) else label, outcome, gopt.annotated_file(label)))
    code = gopt.publish_gates(suites, gates, console)

    if json_out is not None:
        gated = loaded[0][1].to_dict(gates=suites[0][1])
        if to_stdout:
            sys.stdout.write(json.dumps(json_ready(gated), indent=2) + "\n")
        else:
            write_json(json_out, gated, force)
            console.print(f"wrote {json_out}", markup=False, highlight=False)
    raise typer.Exit(code)
