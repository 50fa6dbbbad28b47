"""The reader registry and :func:`load_synthetic`, the one entry point.

Adding a format is one decorated function: ``@register_reader(name, detect=...)``.
Auto-detection asks each reader's ``detect(path)`` in ascending ``priority``
(registration order breaks ties) and uses the first that says yes, so the
specific formats (file-name conventions, dict layouts) are asked before the
generic ones.
"""

from __future__ import annotations

import operator
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg
from ddaudit.io._files import loading_session, require_exists
from ddaudit.io._types import SyntheticSet

Reader = Callable[[Path, int], SyntheticSet]
Detector = Callable[[Path], bool]


@dataclass(frozen=True)
class ReaderEntry:
    """One registered format: how to read it and how to recognise it."""

    name: str
    read: Reader
    detect: Detector | None
    priority: int
    description: str


_READERS: dict[str, ReaderEntry] = {}


def register_reader(
    name: str, *, detect: Detector | None = None, priority: int = 100
) -> Callable[[Reader], Reader]:
    """Register ``read(path, index) -> SyntheticSet`` as the reader for ``name``.

    ``detect(path) -> bool`` says whether the reader recognises a path; a reader
    without one is used only when forced with ``format=name``. Lower
    ``priority`` is asked first. The first docstring line is the description.
    """

    def decorator(read: Reader) -> Reader:
        existing = _READERS.get(name)
        if existing is not None and _qualified(existing.read) != _qualified(read):
            raise ValueError(f"a synthetic-set reader named {name!r} is already registered")
        doc = (read.__doc__ or "").strip().splitlines()
        _READERS[name] = ReaderEntry(name, read, detect, priority, doc[0] if doc else "")
        return read

    return decorator


def _qualified(function: Callable) -> str:
    return f"{function.__module__}.{function.__qualname__}"


def _in_detection_order() -> list[ReaderEntry]:
    order = {name: position for position, name in enumerate(_READERS)}
    return sorted(_READERS.values(), key=lambda entry: (entry.priority, order[entry.name]))


def available_formats() -> list[str]:
    """Registered format names, in the order auto-detection tries them."""
    return [entry.name for entry in _in_detection_order()]


def _available_text() -> str:
    return ", ".join(available_formats())


def _entry(format: str) -> ReaderEntry:
    entry = _READERS.get(format.strip().lower())
    if entry is None:
        raise InputError(msg.UNKNOWN_FORMAT.format(format=format, available=_available_text()))
    return entry


def _detect(path: Path) -> ReaderEntry:
    for entry in _in_detection_order():
        if entry.detect is not None and entry.detect(path):
            return entry
    raise InputError(msg.UNRECOGNISED.format(path=path, available=_available_text()))


def detect_format(path: str | os.PathLike) -> str:
    """The format auto-detection picks for ``path`` (InputError when none fits)."""
    path = Path(os.fspath(path)).expanduser()
    require_exists(path)
    with loading_session():
        return _detect(path).name


def load_synthetic(
    path: str | os.PathLike, format: str | None = None, index: int = -1
) -> SyntheticSet:
    """Load a distilled set saved by a distillation codebase, safely.

    Parameters
    ----------
    path : file or directory the distiller wrote.
    format : a name from :func:`available_formats` to skip auto-detection.
    index : which stored set to take when a file holds several (DatasetCondensation
        keeps one per experiment); negative values count from the end.
    """
    index = operator.index(index)
    entry = _entry(format) if format is not None else None
    path = Path(os.fspath(path)).expanduser()
    require_exists(path)
    with loading_session():
        entry = entry or _detect(path)
        return entry.read(path, index)


def resolve_index(index: int, count: int, path: Path, noun: str) -> int:
    """A non-negative position for ``index`` among ``count`` stored sets."""
    if -count <= index < count:
        return index % count
    raise InputError(
        msg.INDEX_OUT_OF_RANGE.format(
            index=index, path=path, count=count, noun=noun, low=-count, high=count - 1
        )
    )


def single_set(index: int, path: Path) -> None:
    """Formats that store one set accept only index 0 or -1."""
    resolve_index(index, 1, path, "synthetic set")
