"""Where a fair loss finds the protected group of each real row, when not told by keyword.

Two carriers, both free of module-level state:

- :class:`GroupTagged`: a tensor that carries ``groups`` (and optional ``weights``)
  for its own rows. It behaves as a plain tensor everywhere (every operation on it
  returns a plain ``torch.Tensor``), so an undecorated loss still accepts it.
- :func:`group_context`: a context manager holding the groups of the rows a sampler
  drew most recently. It lives in a :class:`contextvars.ContextVar`, so threads and
  asyncio tasks each see their own, and a nested context restores the outer one on exit.

Either may carry an ``(n, K)`` table of several attributes' values instead of group
ids; the fair loss that reads it folds it to the groups it is asked to be fair over.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np
import torch

from ddaudit.errors import InputError
from ddaudit.mitigate.groups import check_group_table, check_weights

ERR_NO_TABLE = "GroupContext.select needs a group table: open it with group_context(table=groups_of_every_row)"
ERR_INDEX = "GroupContext.select got an index that does not fit the group table of {size} rows: {error}"


class GroupTagged(torch.Tensor):
    """A real batch that carries the group id (and optionally a weight) of each row.

    ``GroupTagged(x, groups)`` shares storage and autograd history with ``x``.
    Results of operations on it are plain tensors, so tags never leak into
    derived values: only the exact tensor handed to a fair loss is read.
    """

    groups: torch.Tensor
    weights: torch.Tensor | None

    @staticmethod
    def __new__(cls, data: torch.Tensor, groups, weights=None) -> "GroupTagged":
        if not isinstance(data, torch.Tensor) or data.ndim == 0:
            raise InputError("GroupTagged needs a tensor whose first dimension indexes samples")
        tagged = data.as_subclass(cls)
        tagged.groups = check_group_table(groups, data.shape[0])
        tagged.weights = None if weights is None else check_weights(weights, data.shape[0])
        return tagged

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))

    def untagged(self) -> torch.Tensor:
        """The same data as a plain tensor (still attached to the autograd graph)."""
        return self.as_subclass(torch.Tensor)


def untag(real):
    """Split a (possibly tagged) real batch into ``(plain, groups, weights)``.

    A tuple or list of tensors is searched for one tagged member; its tags apply to all.
    """
    if isinstance(real, GroupTagged):
        return real.untagged(), real.groups, real.weights
    if isinstance(real, (tuple, list)):
        groups = weights = None
        plain = []
        for item in real:
            if isinstance(item, GroupTagged):
                groups, weights = item.groups, item.weights
                item = item.untagged()
            plain.append(item)
        return type(real)(plain), groups, weights
    return real, None, None


class GroupContext:
    """The groups (and weights) of the real rows drawn most recently.

    A sampler calls :meth:`record` with the groups of the rows it drew, or
    :meth:`select` with their indices into ``table`` (the group of every row of the
    dataset); a fair loss called afterwards in the same context uses them.
    """

    def __init__(self, groups=None, weights=None, *, table=None, weight_table=None) -> None:
        self.table = None if table is None else check_group_table(table)
        self.weight_table = None if weight_table is None else check_weights(weight_table)
        self.groups: torch.Tensor | None = None
        self.weights: torch.Tensor | None = None
        self.record(groups, weights)

    def record(self, groups, weights=None) -> None:
        """Remember the groups (and weights) of the rows just drawn."""
        self.groups = None if groups is None else check_group_table(groups)
        self.weights = None if weights is None else check_weights(weights)

    def select(self, index):
        """Record ``table[index]`` (and ``weight_table[index]``); return *index* unchanged.

        Wrap a sampler's indices with it: ``rows = data[ctx.select(idx)]``.
        """
        if self.table is None:
            raise InputError(ERR_NO_TABLE)
        position = torch.as_tensor(np.asarray(index), dtype=torch.long).reshape(-1)
        try:
            groups = self.table[position.to(self.table.device)]
            weights = None
            if self.weight_table is not None:
                weights = self.weight_table[position.to(self.weight_table.device)]
        except IndexError as error:
            raise InputError(ERR_INDEX.format(size=self.table.shape[0], error=error)) from None
        self.record(groups, None if weights is None else weights.reshape(-1))
        return index

    def clear(self) -> None:
        """Forget the recorded groups (a later fair loss call will ask for them)."""
        self.groups = None
        self.weights = None


_CURRENT: ContextVar[GroupContext | None] = ContextVar("ddaudit_group_context", default=None)


@contextmanager
def group_context(groups=None, weights=None, *, table=None, weight_table=None) -> Iterator[GroupContext]:
    """Make a :class:`GroupContext` current for the ``with`` block; restore the outer one after."""
    context = GroupContext(groups, weights, table=table, weight_table=weight_table)
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_group_context() -> GroupContext | None:
    """The innermost active :class:`GroupContext`, or ``None`` outside any."""
    return _CURRENT.get()
