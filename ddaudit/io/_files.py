"""Safe, load-once file access for the readers.

A distilled set is untrusted input and pickle runs code, so every ``.pt`` goes
through ``torch.load(weights_only=True)`` and every ``.npz`` through
``numpy.load(allow_pickle=False)``. Detection may peek at a file's content;
within one :func:`loading_session` each file is read from disk only once and
the reader reuses what detection loaded.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg

TORCH_SUFFIXES = (".pt", ".pth")

_cache: contextvars.ContextVar[dict[Path, Any] | None] = contextvars.ContextVar(
    "ddaudit_io_cache", default=None
)


@contextlib.contextmanager
def loading_session() -> Iterator[None]:
    """Share loaded files between detection and reading for the duration of one load."""
    token = _cache.set({})
    try:
        yield
    finally:
        _cache.reset(token)


def require_exists(path: Path) -> None:
    if not path.exists():
        raise InputError(msg.MISSING_PATH.format(path=path))


def is_torch_file(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in TORCH_SUFFIXES


def _numpy_safe_globals() -> list:
    """Numpy scalars, dtypes and arrays: data, not code, and common in real files.

    DatasetCondensation stores its ``accs_all_exps`` as ``numpy.float64``
    values, which ``weights_only`` refuses unless they are allowlisted. Both
    the numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) names are listed
    because files written under either are in circulation.
    """
    multiarray = np._core.multiarray if hasattr(np, "_core") else np.core.multiarray
    allowed: list = [np.dtype, np.ndarray]
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed.append((multiarray.scalar, f"{module}.scalar"))
        allowed.append((multiarray._reconstruct, f"{module}._reconstruct"))
    allowed.extend(
        dtype_class
        for dtype_class in vars(getattr(np, "dtypes", object)).values()
        if isinstance(dtype_class, type) and issubclass(dtype_class, np.dtype)
    )
    return allowed


def _weights_only_load(path: Path) -> Any:
    safe_globals = getattr(torch.serialization, "safe_globals", None)
    scope = safe_globals(_numpy_safe_globals()) if safe_globals else contextlib.nullcontext()
    with scope, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
        return torch.load(path, map_location="cpu", weights_only=True)


def load_torch(path: Path) -> Any:
    """``torch.load`` a file with ``weights_only=True``; user-facing errors only."""
    cache = _cache.get()
    key = path.resolve()
    if cache is not None and key in cache:
        return cache[key]
    require_exists(path)
    try:
        obj = _weights_only_load(path)
    except Exception as error:  # torch raises many types for damaged files
        text = str(error)
        if "Weights only load failed" in text and "GLOBAL" in text:
            raise InputError(msg.NEEDS_CODE.format(path=path)) from None
        raise InputError(
            msg.DAMAGED_FILE.format(path=path, kind="torch.save", reason=_reason(error))
        ) from None
    if cache is not None:
        cache[key] = obj
    return obj


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` eagerly, refusing pickled object arrays."""
    require_exists(path)
    try:
        archive = np.load(path, allow_pickle=False)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise ValueError("a single .npy array, not an .npz archive")
        with archive:
            return {name: archive[name] for name in archive.files}
    except Exception as error:  # numpy and zipfile raise many types for damaged files
        if isinstance(error, ValueError) and "allow_pickle" in str(error):
            raise InputError(msg.NPZ_NEEDS_PICKLE.format(path=path)) from None
        text = msg.DAMAGED_FILE.format(path=path, kind="numpy .npz", reason=_reason(error))
        raise InputError(text) from None


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file (a format that cannot carry code) onto the CPU."""
    from safetensors.torch import load_file

    require_exists(path)
    try:
        return load_file(os.fspath(path), device="cpu")
    except Exception as error:
        text = msg.DAMAGED_FILE.format(path=path, kind="safetensors", reason=_reason(error))
        raise InputError(text) from None


def _reason(error: BaseException) -> str:
    """The first sentence of a library's error, or a plain description when it has none."""
    if isinstance(error, EOFError):
        return "the file ends early"
    first = " ".join(str(error).split()).split(". ")[0].strip().rstrip(".")
    if not any(ch.isalpha() for ch in first):
        return f"{type(error).__name__} while decoding"
    return first[:160]
