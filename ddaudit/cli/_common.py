"""What every command shares: the stderr console, progress bars, error handling."""

from __future__ import annotations

import functools
import os
import sys
import time
import traceback
from contextlib import contextmanager
from typing import Callable, Iterator

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ddaudit.errors import EXIT_INTERNAL, DDAuditError


def plain_output() -> bool:
    """No animation under CI or when stderr is not a terminal."""
    return bool(os.environ.get("CI")) or not sys.stderr.isatty()


def make_console() -> Console:
    """Humans read stderr; stdout stays free for machine output."""
    return Console(stderr=True, highlight=False, soft_wrap=False, width=None if sys.stderr.isatty() else 160)


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
