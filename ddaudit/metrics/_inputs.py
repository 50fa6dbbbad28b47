"""Turn user arrays (numpy, torch, lists) into validated integer numpy arrays.

Every public metric goes through these checks so a wrong shape or an out-of-range
label becomes a one-line :class:`~ddaudit.errors.InputError` instead of a silent
``np.bincount`` overflow into the wrong cell.
"""

from __future__ import annotations

import numpy as np

from ddaudit.errors import ConfigError, InputError

from . import _messages as msg


def to_numpy(values) -> np.ndarray:
    """A numpy view of a numpy array, CPU/GPU torch tensor or list."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def _integral(array: np.ndarray) -> bool:
    if np.issubdtype(array.dtype, np.integer) or array.dtype == bool:
        return True
    if np.issubdtype(array.dtype, np.floating):
        return bool(np.all(np.isfinite(array)) and np.all(array == np.round(array)))
    return False


def _check_range(array: np.ndarray, name: str, size: int) -> None:
    if array.size and (array.min() < 0 or array.max() >= size):
        raise InputError(msg.OUT_OF_RANGE.format(
            name=name, high=size - 1, low_found=int(array.min()), high_found=int(array.max())))


def as_labels(values, name: str, size: int, length: int | None = None) -> np.ndarray:
    """A 1-D int64 array of labels in ``0..size-1`` (``length`` entries when given)."""
    array = to_numpy(values)
    if array.ndim != 1 or not _integral(array):
        raise InputError(msg.NOT_LABELS.format(name=name, shape=tuple(array.shape), dtype=array.dtype))
    if length is not None and array.shape[0] != length:
        raise InputError(msg.LENGTH_MISMATCH.format(name=name, found=array.shape[0], expected=length))
    array = array.astype(np.int64)
    _check_range(array, name, size)
    return array


def as_predictions(values, num_classes: int, length: int) -> np.ndarray:
    """Predicted classes as int64 ``(E, N)``; a single ``(N,)`` row becomes ``E = 1``."""
    array = to_numpy(values)
    if array.ndim == 1:
        array = array[None, :]
    if array.ndim != 2 or not _integral(array) or array.shape[0] == 0:
        raise InputError(msg.NOT_PREDICTIONS.format(shape=tuple(to_numpy(values).shape), dtype=array.dtype))
    if array.shape[1] != length:
        raise InputError(msg.LENGTH_MISMATCH.format(name="predictions", found=array.shape[1], expected=length))
    array = array.astype(np.int64)
    _check_range(array, "predictions", num_classes)
    return array


def as_count(value, name: str) -> int:
    """A positive integer setting such as ``num_classes``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(msg.BAD_COUNT.format(name=name, value=value))
    return int(value)
