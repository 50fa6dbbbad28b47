"""HTML building blocks the page and its attack sections share, below both."""

from __future__ import annotations

import html
from typing import Iterable


def _e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _table(header: Iterable[str], rows: Iterable[Iterable[str]], *, left: tuple[int, ...] = (0,), css: str = "") -> str:
    head = "".join(f'<th class="text">{_e(h)}</th>' if i in left else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>" + "".join(f'<td class="text">{_e(c)}</td>' if i in left else f"<td>{_e(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table class="{css}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _section(ident: str, title: str, content: str) -> str:
    return f'<section id="{ident}"><h2>{_e(title)}</h2>{content}</section>'
