"""Writing outputs without losing anything the user owns."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from ddaudit.errors import ConfigError

EXISTS_MESSAGE = "{path} already exists; pass --force to overwrite it"


def check_writable(path: str | Path, force: bool) -> Path:
    """Refuse to replace an existing file (or a directory) unless *force*."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a directory; give a file name")
    if path.exists() and not force:
        raise ConfigError(EXISTS_MESSAGE.format(path=path))
    if not path.parent.exists():
        raise ConfigError(f"the folder {path.parent} does not exist")
    return path


def json_ready(value):
    """Plain JSON types only: numpy scalars become Python numbers, NaN/Inf become null."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_ready(value.tolist())
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def write_text(path: str | Path, text: str, force: bool = False) -> Path:
    """Atomic write: a crash never leaves a half-written file in the user's place."""
    path = check_writable(path, force)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _file_mode(path: Path) -> int:
    """The mode a plain ``open()`` would give *path*: the replaced file's own, else 0666 less the umask.

    ``mkstemp`` creates its file 0600 whatever the umask, and the atomic rename
    would otherwise make every report readable by its owner alone.
    """
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_json(path: str | Path, report: dict, force: bool = False) -> Path:
    return write_text(path, json.dumps(json_ready(report), indent=2, sort_keys=False) + "\n", force)
