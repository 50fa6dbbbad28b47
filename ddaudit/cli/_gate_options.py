"""Gate flags shared by ``check`` and ``gate``, and the step that ends both commands.

The gate options are declared once, here: :func:`with_gate_options` adds one
``--max-*``/``--min-*`` flag per threshold of :data:`ddaudit.gate.THRESHOLDS`
(so a metric registered with a gate gets its flag with no edit here) plus the
settings flags to a command's signature, and hands the command one validated
:class:`GateArgs` as its ``gates`` keyword. A value of ``None`` means "not given
on the command line": the configuration file then decides.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Callable, Optional, Sequence

import typer
from rich.console import Console

from ddaudit.cli._common import Command, inject_options, keyword_parameters
from ddaudit.gate import (
    GATE_ON_CHOICES,
    INCONCLUSIVE_CHOICES,
    THRESHOLDS,
    GateOutcome,
    GateSettings,
    combined_exit_code,
    emit_github,
    in_github_actions,
    render_gates,
    resolve_gate_settings,
    write_junit,
)

PANEL = "Fairness gates"
UNKNOWN_GATE_FLAG_SUFFIX = "; valid threshold flags: {flags}"


def _one_of(choices: tuple[str, ...]) -> Callable[[Optional[str]], Optional[str]]:
    """A typer callback that rejects values outside *choices* as a usage error (exit 2)."""

    def check(value: Optional[str]) -> Optional[str]:
        if value is not None and value not in choices:
            raise typer.BadParameter(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return check


def _threshold_option(name: str):
    threshold = THRESHOLDS[name]
    return typer.Option(threshold.flag, help=threshold.help, rich_help_panel=PANEL, show_default=False)


def threshold_annotation(name: str):
    """The option type of one threshold flag, for a command that takes only some gates."""
    return Annotated[Optional[float], _threshold_option(name)]


#: ``ddaudit probe`` takes only the composition gate.
MaxMajorityShare = threshold_annotation("max_majority_share")
MaxMajorityWeight = threshold_annotation("max_majority_weight")

ConfigPath = Annotated[Optional[Path], typer.Option(
    "--config", rich_help_panel=PANEL, show_default=False,
    help="Gate configuration: a ddaudit.toml or a pyproject.toml with \\[tool.ddaudit] "
         "(default: ./ddaudit.toml, else ./pyproject.toml). Flags override it.",
)]
Profile = Annotated[Optional[str], typer.Option(
    "--profile", rich_help_panel=PANEL, show_default=False,
    help="Named profile from the configuration (\\[tool.ddaudit.profiles.NAME]) laid over its base settings.",
)]
GateOn = Annotated[Optional[str], typer.Option(
    "--gate-on", metavar="|".join(GATE_ON_CHOICES), callback=_one_of(GATE_ON_CHOICES),
    rich_help_panel=PANEL, show_default=False,
    help="ci: pass when the whole gating interval (exact per-cell bounds plus evaluator spread) meets the "
         "threshold, fail when the whole interval violates it, inconclusive when the threshold lies inside it. "
         "mean: decide on the mean over evaluators alone (no uncertainty). Default: ci.",
)]
Inconclusive = Annotated[Optional[str], typer.Option(
    "--inconclusive", metavar="|".join(INCONCLUSIVE_CHOICES), callback=_one_of(INCONCLUSIVE_CHOICES),
    rich_help_panel=PANEL, show_default=False,
    help="What an undecidable gate does: error exits 3, pass exits 0, fail exits 1. Default: error.",
)]
MinGroupSize = Annotated[Optional[int], typer.Option(
    "--min-group-size", min=0, rich_help_panel=PANEL, show_default=False,
    help="Warn about (class, group) test cells with fewer samples; small cells widen the gating interval "
         "rather than override the decision (in reports without intervals they still make disparity gates "
         "inconclusive). Default: 20.",
)]
ExitZero = Annotated[bool, typer.Option(
    "--exit-zero", rich_help_panel=PANEL, help="Report gate results but exit 0 whatever they are.",
)]
JUnitPath = Annotated[Optional[Path], typer.Option(
    "--junit", rich_help_panel=PANEL, show_default=False,
    help="Write a JUnit XML file with one test case per gate.",
)]
Force = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]


class GateCommand(Command):
    """A command whose unknown ``--max-*``/``--min-*`` flags list the valid thresholds.

    Typer vendors click's exceptions in a private module, so the "no such option"
    error is recognised by its class name and attributes rather than imported.
    """

    def explain(self, error) -> str:
        message = super().explain(error)
        name = getattr(error, "option_name", None)
        if (type(error).__name__ == "NoSuchOption" and isinstance(name, str)
                and name.startswith(("--max-", "--min-"))):
            flags = ", ".join(threshold.flag for threshold in THRESHOLDS.values())
            message += UNKNOWN_GATE_FLAG_SUFFIX.format(flags=flags)
        return message


@dataclass(frozen=True)
class GateArgs:
    """Resolved gate options: validated settings plus where the JUnit file goes."""

    settings: GateSettings
    junit: Path | None = None
    force: bool = False

    @property
    def min_group_size(self) -> int:
        return self.settings.min_group_size


#: The settings flags every gated command takes, besides one flag per threshold.
SETTING_OPTIONS = {"config": ConfigPath, "profile": Profile, "gate_on": GateOn, "inconclusive": Inconclusive,
                   "min_group_size": MinGroupSize, "exit_zero": ExitZero, "junit": JUnitPath}


def gate_parameters() -> list[inspect.Parameter]:
    """The gate flags as keyword parameters: one per threshold, then the settings."""
    thresholds = {name: threshold_annotation(name) for name in THRESHOLDS}
    return keyword_parameters({**thresholds, **SETTING_OPTIONS}, {"exit_zero": False})


def with_gate_options(command: Callable) -> Callable:
    """Give *command* every gate flag; it receives them resolved as ``gates: GateArgs``.

    The flags are checked (configuration file, profile, ranges, a JUnit path
    that exists without ``--force``) before the command body runs.
    """

    def build(*, exit_zero=False, force=False, **flags) -> GateArgs:
        return collect_gate_args(**flags, exit_zero=bool(exit_zero), force=force)

    return inject_options(command, "gates", gate_parameters(), build)


def collect_gate_args(
    *,
    config: Path | None = None,
    profile: str | None = None,
    gate_on: str | None = None,
    inconclusive: str | None = None,
    min_group_size: int | None = None,
    exit_zero: bool = False,
    junit: Path | None = None,
    force: bool = False,
    cwd: Path | None = None,
    **thresholds: float | None,
) -> GateArgs:
    """Merge flags over the configuration file and check them before any work starts.

    *thresholds* are keyed by threshold name (``max_deo_max=0.3``); ``None``
    means "not given". Raises ``ConfigError`` (exit 2) for an unknown key or
    profile, a value out of range, or a JUnit path that exists without *force*.
    """
    unknown = sorted(set(thresholds) - set(THRESHOLDS))
    if unknown:
        raise TypeError(f"unknown threshold(s): {', '.join(unknown)}")
    overrides = {
        **{name: thresholds.get(name) for name in THRESHOLDS},
        "gate_on": gate_on,
        "inconclusive": inconclusive,
        "min_group_size": min_group_size,
        "exit_zero": True if exit_zero else None,
    }
    settings = resolve_gate_settings(overrides, config=config, profile=profile, cwd=cwd)
    if junit is not None:
        from ddaudit.report import check_writable

        check_writable(junit, force)
    return GateArgs(settings=settings, junit=junit, force=force)


def report_label(report, fallback: str = "report") -> str:
    """How a report (an ``AuditReport`` or its JSON dict) is named in tables, JUnit
    suites and annotations: its distilled set."""
    synthetic = report.get("synthetic") if isinstance(report, dict) else report.synthetic
    path = synthetic.get("path") if isinstance(synthetic, dict) else None
    return str(path) if path else fallback


def publish_gates(
    suites: Sequence[tuple[str, GateOutcome, str | None]],
    args: GateArgs,
    console: Console,
) -> int:
    """Show, write and announce decided gates; return the exit code for all of them.

    *suites* holds ``(label, outcome, annotated_file)`` per report.
    """
    for label, outcome, _ in suites:
        render_gates(console, outcome, label)
    if args.junit is not None:
        write_junit(args.junit, [(label, outcome) for label, outcome, _ in suites], force=args.force)
        console.print(f"wrote {args.junit}", markup=False, highlight=False)
    if in_github_actions():
        stream = getattr(console, "file", None) or sys.stderr
        try:
            emit_github(suites, stream)
        except OSError as error:
            console.print(f"warning: cannot append the gate table to $GITHUB_STEP_SUMMARY ({error.strerror})",
                          markup=False, highlight=False)
    return combined_exit_code([outcome for _, outcome, _ in suites])


def annotated_file(path: str | Path) -> str | None:
    """A repository-relative file GitHub can attach an annotation to, if *path* is one."""
    path = Path(path)
    return path.as_posix() if not path.is_absolute() and path.exists() else None
