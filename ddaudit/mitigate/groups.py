"""Group row scales: the arithmetic behind synchronized, barycenter and weighted matching.

A mean-matching loss sees the real batch only through ``mean_i(phi_i)``. Multiplying
row ``i`` by a scale ``s_i`` before that mean moves the target without touching the
loss: with ``s_i = n / (K * n_g(i))`` the plain mean becomes the equal-weighted mean of
the ``K`` group means (the barycenter ``mu_bar``), and with ``s_i = n * w_i / sum(w)``
it becomes the ``w``-weighted mean. FairDD's synchronized loss follows from

    sum_g ||mu_g - m||^2 = K * ||mu_bar - m||^2 + sum_g ||mu_g - mu_bar||^2,

whose last term does not depend on the synthetic mean ``m``: matching ``mu_bar`` and
multiplying the squared distance by ``K`` (or both feature sets by ``sqrt(K)``, see
:func:`sync_scale`) gives FairDD's gradient with respect to the synthetic images
exactly, in one loss call.

Groups below ``min_group_size`` rows are dropped (scale 0) and not counted in ``K``.

Several protected attributes arrive as an ``(n, K)`` table; :func:`fold_attributes`
turns it into one group id per row, the intersection of the chosen columns, so
synchronising over "colour and gender" is synchronising over their combinations.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ddaudit.choices import MATCHING_MODES
from ddaudit.errors import ConfigError, InputError

#: Matching modes understood by :func:`row_scales` and ``@fair_matching``.
MODES = MATCHING_MODES

ERR_UNKNOWN_MODE = "unknown matching mode {mode!r}; use one of: none, sync, barycenter, weights"
ERR_GROUPS_NEEDED = "mode {mode!r} needs the protected group of every real row; pass groups"
ERR_GROUPS_SHAPE = "groups must be a 1-D integer tensor with one entry per real row, got dtype {dtype} and shape {shape}"
ERR_GROUPS_LENGTH = "groups has {got} entries but the real batch has {n} rows; give the groups of exactly the rows passed to the loss"
ERR_WEIGHTS_NEEDED = "mode 'weights' needs one weight per real row; pass weights"
ERR_WEIGHTS_SHAPE = "weights must be a 1-D tensor with one entry per real row, got shape {shape}"
ERR_WEIGHTS_LENGTH = "weights has {got} entries but the real batch has {n} rows; give the weights of exactly the rows passed to the loss"
ERR_WEIGHTS_INVALID = "weights must be finite and non-negative; found NaN, infinite or negative values"
ERR_WEIGHTS_ZERO = "weights sum to zero; give at least one real row a positive weight"
ERR_MIN_GROUP_SIZE = "min_group_size must be an integer >= 1, got {value!r}"
ERR_ATTRIBUTE_FLAT = ("attribute={attribute!r} picks columns of an (n, K) attribute table, but the groups are one "
                      "column (shape {shape}); pass the table or drop attribute")
ERR_ATTRIBUTE_RANGE = "attribute={attribute!r} names column(s) outside the {k} attribute columns of the groups"
ERR_TABLE = "groups must be (n,) group ids or an (n, K) integer attribute table, got dtype {dtype} and shape {shape}"
ERR_NO_GROUP_KEPT = "no group has at least min_group_size={min_group_size} rows in this batch; lower min_group_size or draw larger batches"


def check_mode(mode: str) -> str:
    """Return *mode* if it is one of :data:`MODES`, else raise :class:`ConfigError`."""
    if mode not in MODES:
        raise ConfigError(ERR_UNKNOWN_MODE.format(mode=mode))
    return mode


def check_min_group_size(value: int) -> int:
    """Return *value* if it is a usable minimum group size (an int >= 1)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(ERR_MIN_GROUP_SIZE.format(value=value))
    return value


def check_groups(groups, n: int | None = None) -> torch.Tensor:
    """Validate group ids: 1-D, integer (or bool), one per row when *n* is given."""
    groups = torch.as_tensor(groups)
    if groups.ndim != 1 or groups.is_floating_point() or groups.is_complex():
        raise InputError(ERR_GROUPS_SHAPE.format(dtype=groups.dtype, shape=tuple(groups.shape)))
    if n is not None and groups.shape[0] != n:
        raise InputError(ERR_GROUPS_LENGTH.format(got=groups.shape[0], n=n))
    return groups.long()


def check_weights(weights, n: int | None = None) -> torch.Tensor:
    """Validate per-row weights: 1-D, finite, non-negative, positive sum; returned as float."""
    weights = torch.as_tensor(weights)
    if weights.ndim != 1:
        raise InputError(ERR_WEIGHTS_SHAPE.format(shape=tuple(weights.shape)))
    if n is not None and weights.shape[0] != n:
        raise InputError(ERR_WEIGHTS_LENGTH.format(got=weights.shape[0], n=n))
    if not weights.is_floating_point():
        weights = weights.float()
    if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
        raise InputError(ERR_WEIGHTS_INVALID)
    if not bool(weights.sum() > 0):
        raise InputError(ERR_WEIGHTS_ZERO)
    return weights


def check_group_table(groups, n: int | None = None) -> torch.Tensor:
    """Validate group ids ``(n,)`` or an ``(n, K)`` attribute table (folded later, by the loss that reads it)."""
    groups = torch.as_tensor(groups)
    if groups.ndim != 2:
        return check_groups(groups, n)
    if groups.is_floating_point() or groups.is_complex() or groups.shape[1] == 0:
        raise InputError(ERR_TABLE.format(dtype=groups.dtype, shape=tuple(groups.shape)))
    if n is not None and groups.shape[0] != n:
        raise InputError(ERR_GROUPS_LENGTH.format(got=groups.shape[0], n=n))
    return groups.long()


def fold_attributes(groups, attribute: int | Sequence[int] | None = None) -> torch.Tensor:
    """One group id per row: 1-D ids unchanged; an ``(n, K)`` table folded to the intersection of its
    *attribute* columns (an index or a list of indices; ``None``: all of them).

    Ids follow :func:`ddaudit.data.intersection_index` with each column's range taken from
    these rows, so the same combination may carry another id in another batch; what
    synchronised matching reads, which rows share a group, does not depend on it.
    """
    groups = torch.as_tensor(groups)
    if groups.is_floating_point() or groups.is_complex() or groups.ndim not in (1, 2):
        raise InputError(ERR_TABLE.format(dtype=groups.dtype, shape=tuple(groups.shape)))
    if groups.ndim == 1:
        if attribute is not None:
            raise ConfigError(ERR_ATTRIBUTE_FLAT.format(attribute=attribute, shape=tuple(groups.shape)))
        return groups
    columns = list(range(groups.shape[1])) if attribute is None else (
        [attribute] if isinstance(attribute, int) else list(attribute))
    if not columns or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c < groups.shape[1]
                          for c in columns):
        raise ConfigError(ERR_ATTRIBUTE_RANGE.format(attribute=attribute, k=groups.shape[1]))
    if len(columns) == 1:
        return groups[:, columns[0]].long()
    from ddaudit.data import intersection_index  # the one numbering of intersections (loaded on first use)

    return intersection_index(groups[:, columns].long())


def present_groups(groups: torch.Tensor) -> torch.Tensor:
    """Sorted unique group ids present in *groups*."""
    return torch.unique(check_groups(groups), sorted=True)


def kept_groups(groups: torch.Tensor, min_group_size: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Split the present groups into ``(kept, skipped)`` ids by ``min_group_size`` rows."""
    check_min_group_size(min_group_size)
    ids, counts = torch.unique(check_groups(groups), sorted=True, return_counts=True)
    keep = counts >= min_group_size
    return ids[keep], ids[~keep]


def _group_terms(groups: torch.Tensor, min_group_size: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-row group size (0 for dropped rows), kept-row mask and K, the number of kept groups."""
    groups = check_groups(groups)
    _, inverse, counts = torch.unique(groups, return_inverse=True, return_counts=True)
    row_counts = counts[inverse]
    kept_rows = row_counts >= check_min_group_size(min_group_size)
    num_kept = int((counts >= min_group_size).sum())
    if num_kept == 0:
        raise InputError(ERR_NO_GROUP_KEPT.format(min_group_size=min_group_size))
    return row_counts, kept_rows, num_kept


def _batch_rows(groups, weights) -> torch.Tensor:
    """Whichever per-row tensor is given, to know the batch size in mode ``none``."""
    if groups is not None:
        return check_groups(groups)
    if weights is not None:
        return check_weights(weights)
    raise ConfigError("mode 'none' needs groups or weights to know the batch size")


def row_scales(
    groups: torch.Tensor | None,
    mode: str,
    weights: torch.Tensor | None = None,
    *,
    min_group_size: int = 1,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Row multipliers ``s`` (``(n,)``, ``dtype``) with ``mean_i(s_i * phi_i)`` = the mode's target mean.

    - ``sync`` / ``barycenter``: ``s_i = n / (K * n_g(i))``, so the mean is
      ``(1/K) * sum_g mu_g`` over the ``K`` groups kept (groups below
      ``min_group_size`` rows get ``s_i = 0``). ``sync`` additionally needs the
      loss multiplied by ``K`` (or :func:`sync_scale` on both sides).
    - ``weights``: ``s_i = n * w_i / sum(w)``, the ``w``-weighted mean; groups are ignored.
    - ``none``: ones.
    """
    check_mode(mode)
    if mode == "weights":
        if weights is None:
            raise ConfigError(ERR_WEIGHTS_NEEDED)
        weights = check_weights(weights, None if groups is None else len(groups)).to(torch.float64)
        return (weights.shape[0] * weights / weights.sum()).to(dtype)
    if mode == "none":
        rows = _batch_rows(groups, weights)
        return torch.ones(rows.shape[0], device=rows.device, dtype=dtype)
    if groups is None:
        raise ConfigError(ERR_GROUPS_NEEDED.format(mode=mode))
    groups = check_groups(groups)
    row_counts, kept_rows, num_kept = _group_terms(groups, min_group_size)
    n = groups.shape[0]
    scales = n / (num_kept * row_counts.to(torch.float64))
    return torch.where(kept_rows, scales, torch.zeros_like(scales)).to(dtype)


def sync_scale(groups: torch.Tensor, *, min_group_size: int = 1) -> float:
    """``sqrt(K)``: the factor on real *and* synthetic features that turns barycenter into FairDD.

    With real rows rescaled by :func:`row_scales` (mean ``mu_bar``) and both sides
    multiplied by ``sqrt(K)``, a squared-distance loss becomes
    ``||sqrt(K) mu_bar - sqrt(K) m||^2 = K ||mu_bar - m||^2
    = sum_g ||mu_g - m||^2 - sum_g ||mu_g - mu_bar||^2``: FairDD's loss minus a term
    free of ``m``, so the gradient with respect to the synthetic images is FairDD's.
    Used where the loss itself cannot be multiplied (an inline loss fed by a patched embed).
    """
    _, _, num_kept = _group_terms(groups, min_group_size)
    return math.sqrt(num_kept)


def target_weights(
    groups: torch.Tensor | None,
    mode: str,
    weights: torch.Tensor | None = None,
    *,
    min_group_size: int = 1,
) -> torch.Tensor:
    """Per-target row weights ``(n, T)``, each column summing to 1.

    For losses that consume weighted means directly (e.g. a weighted cross-entropy
    inside a real gradient): ``sync`` has one column per kept group (``1/n_g`` on
    its rows, columns in :func:`kept_groups` order), ``barycenter`` and ``weights``
    one column ``row_scales / n``, ``none`` one uniform column.
    """
    check_mode(mode)
    if mode == "none":
        rows = _batch_rows(groups, weights)
        return torch.full((rows.shape[0], 1), 1.0 / rows.shape[0], device=rows.device)
    if mode != "sync":
        scales = row_scales(groups, mode, weights, min_group_size=min_group_size)
        return (scales / scales.shape[0]).unsqueeze(1)
    if groups is None:
        raise ConfigError(ERR_GROUPS_NEEDED.format(mode=mode))
    groups = check_groups(groups)
    kept, _ = kept_groups(groups, min_group_size)
    if kept.numel() == 0:
        raise InputError(ERR_NO_GROUP_KEPT.format(min_group_size=min_group_size))
    member = (groups.unsqueeze(1) == kept.unsqueeze(0)).to(torch.float64)
    return (member / member.sum(0, keepdim=True)).float()
