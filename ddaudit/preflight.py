"""Preflight: every check that can fail on user input, run before any training.

An audit or a distillation can take minutes to hours; an input problem found
at the end (a second broken file, an output folder that cannot be written, one
path given to two outputs) wastes all of it. Every command (``check``,
``probe``, ``gate``, ``weights``, ``run``, ``demo``) calls these checks first;
each raises a :class:`~ddaudit.errors.DDAuditError` with one line that says how
to fix the problem (exit 2), and none of them changes anything the user owns.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from ddaudit.errors import ConfigError, InputError

def _key(path: Path) -> str:
    """One spelling per file: absolute, symlinks and ``..`` resolved, case as the OS compares it."""
    return os.path.normcase(str(Path(path).expanduser().resolve()))


UNWRITABLE_FOLDER_MESSAGE = "cannot write into the folder {folder} for {flag} ({reason}); pick a folder you can write"


def prove_writable_folder(folder: Path, flag: str) -> None:
    """Create and remove a temporary file in *folder*: the only sure test that it can be written."""
    try:
        fd, name = tempfile.mkstemp(dir=folder, prefix=".ddaudit-preflight-", suffix=".tmp")
    except OSError as error:
        raise ConfigError(UNWRITABLE_FOLDER_MESSAGE.format(
            folder=folder, flag=flag, reason=error.strerror or type(error).__name__)) from None
    os.close(fd)
    Path(name).unlink(missing_ok=True)


SAME_OUTPUT_MESSAGE = "{first} and {second} both name {path}; give each output its own file"
OUTPUT_IS_INPUT_MESSAGE = "{flag} {path} is also an input; write the output to another file"


def check_outputs(outputs: Mapping[str, Path | str | None], *, force: bool,
                  inputs: Iterable[Path | str] = ()) -> dict[str, Path]:
    """Check every output file a command will write, before it starts working.

    *outputs* maps a flag (``--json``) to a path or ``None`` (not asked for).
    Each path must not exist (unless *force*), must not be a folder, must
    live in an existing folder that can be written (proven by writing a
    temporary file there), and must differ from every other output and from
    every input. Returns the outputs that were given.
    """
    from ddaudit.report import check_writable

    given = {flag: Path(path) for flag, path in outputs.items() if path is not None and str(path) != "-"}
    seen: dict[str, str] = {}
    input_keys = {_key(Path(path)) for path in inputs}
    for flag, path in given.items():
        key = _key(path)
        if key in seen:
            raise ConfigError(SAME_OUTPUT_MESSAGE.format(first=seen[key], second=flag, path=path))
        if key in input_keys:
            raise ConfigError(OUTPUT_IS_INPUT_MESSAGE.format(flag=flag, path=path))
        seen[key] = flag
        check_writable(path, force)
        prove_writable_folder(path.parent if str(path.parent) else Path("."), flag)
    return given


NOT_A_FOLDER_MESSAGE = "{flag} {path} is a file; give a folder"


def check_output_folder(folder: Path | str | None, flag: str, *, create: bool = False) -> Path | None:
    """A folder a command will write into: not a file, and writable (created first when *create*)."""
    if folder is None:
        return None
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ConfigError(NOT_A_FOLDER_MESSAGE.format(flag=flag, path=folder))
    if not folder.exists():
        if not create:
            parent = next((p for p in folder.parents if p.exists()), Path("."))
            if not parent.is_dir():
                raise ConfigError(NOT_A_FOLDER_MESSAGE.format(flag=flag, path=parent))
            prove_writable_folder(parent, flag)
            return folder
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(UNWRITABLE_FOLDER_MESSAGE.format(
                folder=folder, flag=flag, reason=error.strerror or type(error).__name__)) from None
    prove_writable_folder(folder, flag)
    return folder


MISSING_INPUT_MESSAGE = "{what} {path} does not exist"


def check_inputs_exist(paths: Iterable[Path | str | None], what: str) -> None:
    """Every given path exists (files or folders)."""
    for path in paths:
        if path is not None and not Path(path).exists():
            raise InputError(MISSING_INPUT_MESSAGE.format(what=what, path=path))


def check_counts(values: Mapping[str, object], *, least: int = 1) -> None:
    """Each given option (``None`` is "not given") is a whole number >= *least*."""
    for flag, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{flag} must be a whole number >= {least}, got {value!r}")


def check_fraction(value: object, flag: str, *, low_open: bool = True, high_open: bool = False) -> float:
    """*value* is a number in (0, 1] (by default; the ends are open or closed as asked)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok:
        ok = (0 < value if low_open else 0 <= value) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise ConfigError(f"{flag} must lie in {interval}, got {value!r}")
    return float(value)
