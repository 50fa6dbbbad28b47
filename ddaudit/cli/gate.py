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
    app.command("gate", help=GATE_HELP, cls=gopt.GateCommand)(handle_errors(gate))


def gate(
    reports: Annotated[list[Path], typer.Argument(help="Report JSON file(s) from `ddaudit check --json`.", show_default=False)],
    max_deo_max: gopt.MaxDeoMax = None,
    max_deo_avg: gopt.MaxDeoAvg = None,
    min_accuracy: gopt.MinAccuracy = None,
    min_worst_group_accuracy: gopt.MinWorstGroupAccuracy = None,
    max_accuracy_gap: gopt.MaxAccuracyGap = None,
    max_equalized_odds: gopt.MaxEqualizedOdds = None,
    max_amplification: gopt.MaxAmplification = None,
    max_amplification_diff: gopt.MaxAmplificationDiff = None,
    config: gopt.ConfigPath = None,
    profile: gopt.Profile = None,
    gate_on: gopt.GateOn = None,
    inconclusive: gopt.Inconclusive = None,
    min_group_size: gopt.MinGroupSize = None,
    exit_zero: gopt.ExitZero = False,
    junit: gopt.JUnitPath = None,
    json_out: Annotated[Optional[Path], typer.Option(
        "--json", show_default=False,
        help="Write the report with its new gates and status as JSON ('-' for stdout).",
    )] = None,
    force: gopt.Force = False,
) -> None:
    from ddaudit.gate import apply_gates, load_report
    from ddaudit.report import check_writable, json_ready, write_json

    args = gopt.collect_gate_args(
        max_deo_max=max_deo_max, max_deo_avg=max_deo_avg, min_accuracy=min_accuracy,
        min_worst_group_accuracy=min_worst_group_accuracy, max_accuracy_gap=max_accuracy_gap,
        max_equalized_odds=max_equalized_odds, max_amplification=max_amplification,
        max_amplification_diff=max_amplification_diff, config=config, profile=profile, gate_on=gate_on,
        inconclusive=inconclusive, min_group_size=min_group_size, exit_zero=exit_zero, junit=junit, force=force,
    )
    to_stdout = json_out is not None and str(json_out) == "-"
    if json_out is not None:
        if len(reports) > 1:
            raise ConfigError(JSON_WITH_SEVERAL_MESSAGE)
        if not to_stdout:
            check_writable(json_out, force)

    loaded = [(path, load_report(path)) for path in reports]
    console = make_console()
    suites = []
    for path, report in loaded:
        outcome = apply_gates(report, args.settings)
        label = gopt.report_label(report, fallback=str(path))
        suites.append((f"{label} ({path})" if label != str(path) else label, outcome, gopt.annotated_file(label)))
    code = gopt.publish_gates(suites, args, console)

    if json_out is not None:
        report = loaded[0][1]
        if to_stdout:
            sys.stdout.write(json.dumps(json_ready(report), indent=2) + "\n")
        else:
            write_json(json_out, report, force)
            console.print(f"wrote {json_out}", markup=False, highlight=False)
    raise typer.Exit(code)
