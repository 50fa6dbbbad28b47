"""Loading pickled dataset batches without letting them run code.

A pickle can name any importable callable and have it called while loading. The
CIFAR python batches only need plain containers plus the three numpy names
that rebuild an array, so every other global is refused.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy

from ddaudit.errors import InputError

REFUSED_GLOBAL = "{path} was refused: it asks to load {module}.{name}, which a dataset batch never needs"
BAD_PICKLE = "{path} is not a readable pickle batch ({why})"

#: The only globals a numpy-array pickle needs (``numpy._core`` is numpy 2's name for ``numpy.core``).
ALLOWED_GLOBALS = frozenset(
    {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }
)


class RefusedGlobal(pickle.UnpicklingError):
    """A pickle asked for a global outside :data:`ALLOWED_GLOBALS`."""

    def __init__(self, module: str, name: str):
        super().__init__(f"{module}.{name}")
        self.module = module
        self.name = name


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobal(module, name)
        if name == "_reconstruct":
            return _reconstruct()
        return getattr(numpy, name)


def _reconstruct():
    """numpy's array-rebuilding function under its current module name (no deprecation warning)."""
    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray
    return multiarray._reconstruct


def load_array_pickle(path: str | Path):
    """Unpickle *path* with ``encoding="bytes"`` (Python 2 batches), numpy arrays allowed, nothing else."""
    try:
        with open(path, "rb") as handle:
            return _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except RefusedGlobal as refused:
        raise InputError(REFUSED_GLOBAL.format(path=path, module=refused.module, name=refused.name)) from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise InputError(BAD_PICKLE.format(path=path, why=f"{type(error).__name__}: {error}")) from None
