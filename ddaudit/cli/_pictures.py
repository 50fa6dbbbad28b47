"""``--plots DIR`` and ``--html FILE``, shared by ``check`` and ``probe``."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

PICTURE_NAMES = ("synthetic_by_group", "composition", "accuracy_by_cell", "distilled_vs_reference")


def check_visual_outputs(plots: Path | None, html: Path | None, force: bool) -> None:
    """Refuse, before any work, to replace pictures or a page the user already has."""
    from ddaudit.errors import ConfigError
    from ddaudit.report import check_writable

    if html is not None:
        check_writable(html, force)
    if plots is not None:
        if plots.exists() and not plots.is_dir():
            raise ConfigError(f"--plots {plots} is a file; give a folder")
        if not plots.parent.exists():
            raise ConfigError(f"the folder {plots.parent} does not exist")
        if plots.is_dir():
            for name in PICTURE_NAMES:
                check_writable(plots / f"{name}.png", force)


def write_visuals(report: dict, inputs, *, plots: Path | None, html: Path | None, force: bool, console: Console) -> None:
    """Draw the pictures once and write them as PNG files and/or inside the HTML page."""
    if plots is None and html is None:
        return
    from ddaudit.report import render_pictures, save_figures, to_html, write_text

    pictures = render_pictures(report, inputs)
    if plots is not None:
        for path in save_figures(pictures, plots, force).values():
            console.print(f"wrote {path}", markup=False, highlight=False)
    if html is not None:
        write_text(html, to_html(report, pictures), force)
        console.print(f"wrote {html}", markup=False, highlight=False)
