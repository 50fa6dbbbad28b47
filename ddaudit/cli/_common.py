"""What every command shares: the stderr console, progress bars, error handling."""

from __future__ import annotations

import functools
import inspect
import os
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Annotated, Callable, Iterator, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ddaudit._output import is_plain_output
from ddaudit.errors import EXIT_INTERNAL, DDAuditError


def plain_output() -> bool:
    """No animation on stderr: the one rule of :func:`ddaudit._output.is_plain_output`."""
    return is_plain_output(sys.stderr)


def make_console() -> Console:
    """Humans read stderr; stdout stays free for machine output."""
    return Console(stderr=True, highlight=False, soft_wrap=False, width=None if sys.stderr.isatty() else 160)


USAGE_ERROR_MESSAGE = "{message} (see `ddaudit {command} --help`)"


class Command(TyperCommand):
    """A command whose usage errors (unknown option, bad value, missing argument)
    are one line on stderr and exit 2, like every other input error.

    Typer vendors click's exceptions in a private module, so a usage error is
    recognised by its attributes (``format_message`` and exit code 2).
    """

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except Exception as error:
            if getattr(error, "exit_code", None) != 2 or not hasattr(error, "format_message"):
                raise
            message = " ".join(self.explain(error).split())
            make_console().print(
                "[bold red]error:[/bold red] " + escape(USAGE_ERROR_MESSAGE.format(message=message, command=self.name)),
                highlight=False, soft_wrap=True,
            )
            raise typer.Exit(2) from None

    def explain(self, error) -> str:
        """The message shown for a usage error; subclasses add what helps."""
        return str(error.format_message())


def inject_options(command: Callable, keyword: str, params: list[inspect.Parameter],
                   build: Callable[..., object]) -> Callable:
    """Add *params* to *command*'s signature (so typer shows and parses them) and call
    *command* with ``keyword=build(**their values, force=...)`` instead of the raw values.

    One declaration of a group of options serves every command that takes it.
    """
    names = [param.name for param in params]
    own = [param.replace(kind=inspect.Parameter.KEYWORD_ONLY)
           for param in inspect.signature(command, eval_str=True).parameters.values() if param.name != keyword]

    @functools.wraps(command)
    def wrapper(**kwargs):
        values = {name: kwargs.pop(name, None) for name in names}
        kwargs[keyword] = build(**values, force=bool(kwargs.get("force", False)))
        return command(**kwargs)

    wrapper.__signature__ = inspect.Signature(own + params)
    return wrapper


def keyword_parameters(options: dict[str, object], defaults: dict[str, object]) -> list[inspect.Parameter]:
    """``{name: Annotated type}`` as keyword-only parameters; a default is ``None`` unless *defaults* names one."""
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults.get(name), annotation=annotation)
            for name, annotation in options.items()]


def with_threads(command: Callable) -> Callable:
    """Add ``--threads N`` to *command*: torch's intra-op thread count, set before the command runs.

    The thread count is part of what a report's figures depend on
    (:mod:`ddaudit.reproducibility`), so every command that trains takes it.
    """
    from ddaudit.reproducibility import THREADS_HELP, use_threads

    param = inspect.Parameter(
        "threads", inspect.Parameter.KEYWORD_ONLY, default=None,
        annotation=Annotated[Optional[int], typer.Option("--threads", help=THREADS_HELP, show_default=False)],
    )
    own = list(inspect.signature(command, eval_str=True).parameters.values())

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        use_threads(kwargs.pop("threads", None))
        return command(*args, **kwargs)

    keyword_only = [p for p in own if p.kind is inspect.Parameter.KEYWORD_ONLY]
    positional = [p for p in own if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    wrapper.__signature__ = inspect.Signature(positional + keyword_only + [param])
    return wrapper


def handle_errors(command: Callable) -> Callable:
    """Turn user-fixable errors into one line on stderr and a documented exit code.

    ``typer.Exit`` passes through untouched; anything unexpected is reported as
    an internal error (exit 101), with the traceback only when ``DDAUDIT_DEBUG``
    is set.
    """

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except DDAuditError as error:
            make_console().print(f"[bold red]error:[/bold red] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except Exception as error:  # noqa: BLE001 - the last line of defence
            if os.environ.get("DDAUDIT_DEBUG"):
                traceback.print_exc()
            make_console().print(
                f"[bold red]internal error:[/bold red] {type(error).__name__}: {escape(str(error))} "
                "(set DDAUDIT_DEBUG=1 for the traceback)",
                highlight=False, soft_wrap=True,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return wrapper


@contextmanager
def phase_progress(console: Console) -> Iterator[Callable[[str, int, int], None]]:
    """A ``progress(phase, done, total)`` callback backed by one rich bar per phase.

    In plain mode (CI, pipes) it prints one line when each phase starts and ends
    instead of redrawing a bar.
    """
    if plain_output():
        started: dict[str, float] = {}
        reported: dict[str, int] = {}

        def report(phase: str, done: int, total: int) -> None:
            now = time.monotonic()
            if phase not in started:
                started[phase] = now
                reported[phase] = 0
                console.print(f"{phase} ...")
            quarter = 4 * done // max(total, 1)
            if quarter > reported[phase]:
                reported[phase] = quarter
                elapsed = now - started[phase]
                if done >= total:
                    console.print(f"  {phase}: done ({total} steps, {elapsed:.0f} s)")
                else:
                    left = elapsed * (total - done) / max(done, 1)
                    console.print(f"  {phase}: {done}/{total} steps, {elapsed:.0f} s elapsed, about {left:.0f} s left")

        yield report
        return

    bars = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )
    tasks: dict[str, int] = {}
    with bars:
        def report(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield report


def parse_key_values(pairs: list[str] | None, flag: str) -> dict:
    """``KEY=VALUE`` options, with numbers and booleans converted."""
    from ddaudit.errors import ConfigError

    out: dict = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"{flag} expects KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        key = key.strip().replace("-", "_")
        text = value.strip()
        if text.lower() in ("true", "false"):
            out[key] = text.lower() == "true"
            continue
        for cast in (int, float):
            try:
                out[key] = cast(text)
                break
            except ValueError:
                continue
        else:
            out[key] = text
    return out
