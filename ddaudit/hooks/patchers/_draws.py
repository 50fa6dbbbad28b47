"""Recover which training rows a real batch holds, without touching the script.

DatasetCondensation keeps its real pool inside ``main()`` and draws a class batch
with a closure::

    def get_images(c, n):
        idx_shuffle = np.random.permutation(indices_class[c])[:n]
        return images_all[idx_shuffle]

:class:`DrawRecorder` replaces ``numpy.random.permutation`` for the codebase's own
frames. When the argument is a list of training-row indices it returns the same
permutation (drawn from the same generator, so the run is unchanged) as an array
that notes the slice taken from it: the rows ``get_images`` returned. A loss
interceptor later claims the most recent draws whose sizes add up to the real
batch it sees, newest last, so both one class batch and the concatenated
``(num_classes * batch_real)`` batch of the BatchNorm branch resolve.

With ``by_weight`` (``ddaudit run --sample-by-weight``) the recorder also
changes the draw: the permutation it returns is a weighted one (Efraimidis and
Spirakis: each row's key is ``u ** (1 / w)`` for a uniform ``u`` from numpy's
global generator, rows in descending key order), so every prefix ``perm[:n]``
is ``n`` distinct rows drawn by weight without replacement. Rows of zero weight
come last. Distinct rows keep ``--init real`` from starting two synthetic
images on the same real one.

With ``balanced`` (``ddaudit run --batches balanced``) the permutation it
returns is a group-balanced one instead (:func:`balanced_permutation`, the
order of :mod:`ddaudit.mitigate.balanced` with its random numbers from numpy's
global generator): every prefix ``perm[:n]`` takes the groups of the rows in
turn, as evenly as their sizes allow, so a class batch holds every group the
class has whenever ``n`` allows it. Rows stay distinct and the class's own.
Only index lists of one class are balanced: a list spanning several classes
(IDM's network-training batch) keeps the script's own order, so its class
proportions stay as published.

Limits: the closure must draw with ``numpy.random.permutation(<index list>)``
(a fork that uses ``torch.randperm`` or a DataLoader is refused with a
:class:`~ddaudit.errors.PatchError` at the first real batch), and rows must reach
the loss in drawn order (DSA reorders nothing). Draws that no loss claims (the
``--init real`` draws, BatchNorm statistics) are dropped when a later batch is claimed.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from ddaudit.hooks.patchers._groups import GroupTable
from ddaudit.mitigate.balanced import order_by_round

#: Draws kept while nothing claims them (bounded so an unclaimed loop cannot grow memory).
MAX_PENDING_DRAWS = 4096


@dataclass
class Draw:
    """Training-row indices drawn for one real batch, and their class when known."""

    indices: np.ndarray
    cls: int | None


class _DrawnIndices(np.ndarray):
    """A permutation that records the slice the caller keeps (``perm[:n]``)."""

    _draw: Draw | None = None

    def __array_finalize__(self, obj) -> None:
        self._draw = getattr(obj, "_draw", None)

    def __getitem__(self, key):
        out = np.ndarray.__getitem__(self.view(np.ndarray), key)
        if isinstance(key, slice) and self._draw is not None:
            self._draw.indices = np.array(out, copy=True)
        return out


def weighted_permutation(indices: np.ndarray, weights: np.ndarray, uniform) -> np.ndarray:
    """*indices* in a random order drawn by *weights* without replacement (keys ``log(u) / w``, descending).

    ``uniform(n)`` supplies the random numbers, so the caller decides which
    generator (and seed) the order comes from. Zero weights sort last, among
    themselves in uniformly random order.
    """
    u = uniform(len(indices))
    with np.errstate(divide="ignore"):
        keys = np.log(u) / np.asarray(weights, dtype=np.float64)
    keys[~np.isfinite(keys)] = -np.inf
    return np.asarray(indices)[np.lexsort((-u, -keys))]


def balanced_permutation(indices: np.ndarray, groups: np.ndarray, uniform) -> np.ndarray:
    """*indices* in a random order whose every prefix is balanced over *groups* (one group per index).

    The order of :func:`ddaudit.mitigate.balanced.balanced_order`: rows by their
    rank inside their own group's shuffle, ties at random. ``uniform(n)``
    supplies the random numbers (a shuffle from one call, the tie-breaks from a
    second), so the caller decides which generator (and seed) the order comes from.
    """
    indices = np.asarray(indices)
    count = len(indices)
    shuffle = np.argsort(uniform(count), kind="stable")
    tie_break = uniform(count)
    positions = order_by_round(np.asarray(groups, dtype=np.int64), shuffle, np.asarray(tie_break, dtype=np.float64))
    return indices[positions.numpy()]


class DrawRecorder:
    """Records index draws made by the codebase; hands them to the loss interceptors.

    With ``by_weight`` the draws themselves follow the table's weights, with
    ``balanced`` they are balanced over the table's groups (see the module docstring).
    """

    def __init__(self, table: GroupTable, covers, *, by_weight: bool = False, balanced: bool = False) -> None:
        if by_weight and balanced:
            raise ValueError("a draw is either by weight or group-balanced, not both")
        self._table = table
        self._covers = covers
        self._draws: list[Draw] = []
        self.recorded = 0
        self.by_weight = by_weight
        #: Draws whose order came from the weights (``by_weight``).
        self.weighted = 0
        self.balanced = balanced
        #: Draws whose order was balanced over the groups (``balanced``).
        self.balanced_draws = 0
        #: Draws left in the script's own order under ``balanced`` because their rows span several classes.
        self.mixed_class_draws = 0

    def _index_list(self, value) -> np.ndarray | None:
        if not isinstance(value, (list, tuple, np.ndarray)):
            return None
        array = np.asarray(value)
        if array.ndim != 1 or array.size == 0 or array.dtype.kind not in "iu":
            return None
        size = self._table.size
        if array.min() < 0 or (size is not None and array.max() >= size):
            return None
        return array

    def patched_permutation(self, original):
        """``numpy.random.permutation`` that records draws of training-row index lists."""

        def permutation(x, *args, **kwargs):
            if args or kwargs or not self._covers(sys._getframe(1).f_code.co_filename):
                return original(x, *args, **kwargs)
            indices = self._index_list(x)
            if indices is None:
                return original(x, *args, **kwargs)
            if self.by_weight:
                result = weighted_permutation(indices, self._table.weights[indices], np.random.random_sample)
                self.weighted += 1
            elif self.balanced and self._table.class_of(indices) is not None:
                result = balanced_permutation(indices, self._table.groups[indices], np.random.random_sample)
                self.balanced_draws += 1
            else:
                if self.balanced:
                    self.mixed_class_draws += 1
                result = original(x, *args, **kwargs)
            draw = Draw(indices=np.array(result, copy=True), cls=None)
            self._remember(draw)
            tracked = result.view(_DrawnIndices)
            tracked._draw = draw
            return tracked

        permutation.__wrapped__ = original
        permutation.__doc__ = original.__doc__
        return permutation

    def record(self, indices) -> Draw:
        """Record a draw directly (samplers that hand out index batches)."""
        draw = Draw(indices=np.asarray(indices, dtype=np.int64).reshape(-1).copy(), cls=None)
        self._remember(draw)
        return draw

    def _remember(self, draw: Draw) -> None:
        self.recorded += 1
        self._draws.append(draw)
        if len(self._draws) > MAX_PENDING_DRAWS:
            del self._draws[: len(self._draws) - MAX_PENDING_DRAWS // 2]

    def claim(self, rows: int, *, single: bool = False) -> list[Draw] | None:
        """The newest draws whose sizes sum to *rows* (oldest first), or ``None``.

        Claimed and older draws are forgotten. With ``single`` only the newest
        draw may match (a loss that sees one class batch at a time).
        """
        total = 0
        for start in range(len(self._draws) - 1, -1, -1):
            total += len(self._draws[start].indices)
            if total == rows:
                claimed = self._draws[start:]
                self._draws = []
                for draw in claimed:
                    draw.cls = self._table.class_of(draw.indices)
                return claimed
            if total > rows or single:
                return None
        return None

    def peek_single(self, rows: int) -> Draw | None:
        """The newest draw if it has exactly *rows* rows (not claimed)."""
        if self._draws and len(self._draws[-1].indices) == rows:
            return self._draws[-1]
        return None

    def forget(self) -> None:
        self._draws = []
