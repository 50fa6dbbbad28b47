"""Several protected attributes at once: picking them by name and indexing their intersection.

A dataset with K attributes carries their values as an ``(N, K)`` integer table
(column k takes values ``0 .. sizes[k] - 1``). Audits and mitigation that know
one group column read the *intersection*: one index per combination of values,
over every combination (empty ones included, so they can be reported as empty),
the first attribute most significant. Its names read ``Male=1, Young=0``.

Everything here is the one place that numbers and names intersections, so the
readers, the metrics and the mitigation cannot disagree about which index is
which combination.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ddaudit.errors import ConfigError, InputError

#: More combinations than this is a table of mostly empty cells no audit can read.
MAX_INTERSECTIONS = 4096

UNKNOWN_ATTRIBUTE = "unknown attribute {name!r} in --sensitive {spec!r}; {source} has: {valid}"
DUPLICATE_ATTRIBUTE = "attribute {name!r} is named twice in --sensitive {spec!r}"
EMPTY_SELECTION = "--sensitive {spec!r} names no attribute; {source} has: {valid}"
ONE_VALUE = ("attribute {name!r} takes a single value ({value}) in {source}: a protected attribute needs at least "
             "two values to compare; drop it from --sensitive")
TOO_MANY = ("the intersection of {names} has {count} combinations (more than {limit}): pick fewer attributes "
            "with --sensitive")
VALUES_SHAPE = "attribute values must be an integer table (N, K) with K = {k}, got {dtype} {shape}"


@dataclass(frozen=True)
class Attributes:
    """K named attributes and the names of each one's values (``values[k][v]`` names value v of attribute k)."""

    names: tuple[str, ...]
    values: tuple[tuple[str, ...], ...]

    @classmethod
    def of(cls, names: Sequence[str], values: Sequence[Sequence[str]]) -> "Attributes":
        return cls(tuple(str(n) for n in names), tuple(tuple(str(v) for v in vs) for vs in values))

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(len(v) for v in self.values)

    @property
    def count(self) -> int:
        return len(self.names)

    def intersection_names(self) -> list[str]:
        """The name of every intersection index, in index order."""
        return intersection_names(self.names, self.values)

    def pick(self, columns: Sequence[int]) -> "Attributes":
        """The attributes at *columns*, in that order."""
        return Attributes(tuple(self.names[c] for c in columns), tuple(self.values[c] for c in columns))


def parse_names(spec: str | Sequence[str] | None) -> list[str] | None:
    """``"Male,Young"`` (or a list) as stripped names; ``None`` when nothing was asked for."""
    if spec is None:
        return None
    parts = spec.split(",") if isinstance(spec, str) else [str(s) for s in spec]
    return [p.strip() for p in parts if p.strip()]


def select_attributes(available: Sequence[str], spec: str | Sequence[str] | None, *, source: str,
                      default: Sequence[str] | None = None) -> list[int]:
    """Column indices of the attributes *spec* names (case-insensitive), in the order named.

    Without a *spec*, *default* (names) or every available attribute. An unknown
    or repeated name is refused with the valid names listed.
    """
    available = [str(a) for a in available]
    wanted = parse_names(spec)
    shown = spec if isinstance(spec, str) else ",".join(wanted or [])
    listing = ", ".join(available)
    if wanted is None:
        wanted = list(default) if default is not None else list(available)
    if not wanted:
        raise ConfigError(EMPTY_SELECTION.format(spec=shown, source=source, valid=listing))
    lowered = [a.lower() for a in available]
    columns: list[int] = []
    for name in wanted:
        if name in available:
            column = available.index(name)
        elif name.lower() in lowered:
            column = lowered.index(name.lower())
        else:
            raise InputError(UNKNOWN_ATTRIBUTE.format(name=name, spec=shown, source=source, valid=listing))
        if column in columns:
            raise ConfigError(DUPLICATE_ATTRIBUTE.format(name=available[column], spec=shown))
        columns.append(column)
    return columns


def check_intersection_size(names: Sequence[str], sizes: Sequence[int]) -> int:
    """The number of combinations, refused when too many to audit."""
    count = math.prod(int(s) for s in sizes)
    if count > MAX_INTERSECTIONS:
        raise ConfigError(TOO_MANY.format(names=", ".join(names), count=count, limit=MAX_INTERSECTIONS))
    return count


def check_varies(values, attributes: Attributes, source: str) -> None:
    """Refuse an attribute that takes one value only: there is nothing to compare it across."""
    table = np.asarray(values)
    for k, name in enumerate(attributes.names):
        present = np.unique(table[:, k])
        if present.size < 2:
            value = attributes.values[k][int(present[0])] if present.size else "none"
            raise InputError(ONE_VALUE.format(name=name, value=value, source=source))


def intersection_index(values, sizes: Sequence[int] | None = None):
    """One index per row for its combination of values: ``sum_k v_k * prod_{j > k} sizes[j]``.

    *values* is an ``(N, K)`` integer table (tensor or array; the result has the
    same kind, int64). *sizes* defaults to one more than each column's largest
    value; give the dataset's sizes so that indices agree across batches.
    """
    is_tensor = isinstance(values, torch.Tensor)
    table = values if is_tensor else np.asarray(values)
    integral = (not (table.is_floating_point() or table.is_complex() or table.dtype == torch.bool) if is_tensor
                else np.issubdtype(table.dtype, np.integer))
    if table.ndim != 2 or not integral:
        raise InputError(VALUES_SHAPE.format(k="K", dtype=table.dtype, shape=tuple(table.shape)))
    table = table.long() if is_tensor else table.astype(np.int64)
    k = table.shape[1]
    if sizes is None:
        sizes = [int(table[:, j].max()) + 1 if table.shape[0] else 1 for j in range(k)]
    if len(sizes) != k:
        raise InputError(VALUES_SHAPE.format(k=len(sizes), dtype=table.dtype, shape=tuple(table.shape)))
    strides = [math.prod(int(s) for s in sizes[j + 1:]) for j in range(k)]
    if is_tensor:
        return (table * torch.tensor(strides, dtype=torch.int64, device=table.device)).sum(dim=1)
    return (table * np.asarray(strides, dtype=np.int64)).sum(axis=1)


def intersection_values(sizes: Sequence[int]) -> np.ndarray:
    """The ``(prod(sizes), K)`` table of value combinations, row i being intersection index i."""
    grids = np.meshgrid(*[np.arange(int(s)) for s in sizes], indexing="ij")
    return np.stack([g.reshape(-1) for g in grids], axis=1).astype(np.int64)


def intersection_names(names: Sequence[str], values: Sequence[Sequence[str]]) -> list[str]:
    """``"A=a, B=b"`` for every intersection index, in index order."""
    combos = intersection_values([len(v) for v in values])
    return [", ".join(f"{names[k]}={values[k][v]}" for k, v in enumerate(row)) for row in combos]


@dataclass(frozen=True)
class Grouping:
    """The attributes a reader keeps, and how their values become the group column.

    One attribute: the group is its value, as single-attribute datasets always
    had. Several: the group is the intersection index and each row keeps its
    values in ``attrs``.
    """

    attributes: Attributes

    @property
    def several(self) -> bool:
        return self.attributes.count > 1

    @property
    def multi(self) -> Attributes | None:
        """What :meth:`RealData.from_splits` takes: the attributes when there are several, else ``None``."""
        return self.attributes if self.several else None

    def groups(self, table) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(a, attrs)`` for an ``(N, K)`` table of the kept attributes' values."""
        table = torch.as_tensor(np.asarray(table) if not isinstance(table, torch.Tensor) else table).long()
        if not self.several:
            return table[:, 0].contiguous(), None
        return intersection_index(table, self.attributes.sizes), table.contiguous()

    def group_names(self, single: Sequence[str] | None = None) -> list[str]:
        """Intersection names, or for one attribute *single* (its usual group names) or its value names."""
        if self.several:
            return self.attributes.intersection_names()
        return list(single) if single is not None else list(self.attributes.values[0])

    @property
    def num_groups(self) -> int:
        return check_intersection_size(self.attributes.names, self.attributes.sizes)
