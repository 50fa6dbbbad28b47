"""``ddaudit datasets``: list the real, group-labelled datasets ``--real`` accepts."""

from __future__ import annotations

import typer
from rich.table import Table

from ddaudit.cli._common import handle_errors, make_console


def register(app: typer.Typer) -> None:
    app.command("datasets", help="List the real dataset presets usable with --real.")(handle_errors(datasets))


def datasets() -> None:
    from ddaudit.data import available_presets

    table = Table(title="--real presets", title_justify="left")
    table.add_column("preset")
    table.add_column("description")
    presets = available_presets()
    items = presets.items() if isinstance(presets, dict) else ((p, "") for p in presets)
    for name, text in items:
        table.add_row(str(name), str(text))
    make_console().print(table)
