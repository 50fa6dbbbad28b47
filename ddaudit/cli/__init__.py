"""The ``ddaudit`` command line: thin typer commands over the Python API.

Each sub-module owns one command (or a few related ones) and exposes
``register(app)``. Humans read stderr (rich); machine output goes to files or
stdout. Errors the user can fix exit with the codes in :mod:`ddaudit.errors`.
"""

from __future__ import annotations

import os
import sys

import typer

from ddaudit.cli import check, datasets, demo, gate, probe, run, weights

app = typer.Typer(
    name="ddaudit",
    help="Audit distilled datasets for group fairness, mitigate unfair distillers, gate CI.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

from typer.core import TyperCommand  # noqa: E402

from ddaudit.cli._common import Command  # noqa: E402

for _module in (check, probe, gate, demo, run, weights, datasets):
    _module.register(app)

# Every command reports usage errors as one line (exit 2), like every other input error.
for _info in app.registered_commands:
    if _info.cls is None or _info.cls is TyperCommand:
        _info.cls = Command


#: Commands every torchrun rank runs on its own: ``run`` executes a third-party
#: script, which may start its own process group.
PER_RANK_COMMANDS = ("run",)
#: Commands that never train: they start without loading torch, in one process.
LIGHT_COMMANDS = ("gate", "datasets")


def main() -> None:
    """Console-script and ``python -m ddaudit`` entry point.

    Under torchrun, rank 0 runs the command and the other ranks train their
    share of its evaluators (:mod:`ddaudit.distributed`).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1") or 1) > 1  # under torchrun: rank 0 alone runs it
    if len(sys.argv) < 2 or (sys.argv[1] in LIGHT_COMMANDS and not launched):
        app()
        return
    from ddaudit.evaluate.runtime import keep_freed_memory

    keep_freed_memory()  # large tensors are freed and re-allocated every step: keep the pages
    if sys.argv[1] in PER_RANK_COMMANDS:
        app()
        return
    from ddaudit.distributed import launch

    raise SystemExit(launch(app))
