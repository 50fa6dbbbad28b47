"""``@fair_matching``: make a per-class matching loss group-fair without editing it.

Contract of the wrapped loss
----------------------------
``loss(real, syn, *args, **kwargs)`` computes the matching loss of **one class**:

- ``real``: the real batch, a tensor (or a tuple/list of tensors sharing their first
  dimension) whose first dimension indexes samples: images, embeddings, anything
  the loss consumes. It may be passed positionally or by its parameter name.
- ``syn``: the synthetic side. It is never split or rescaled: as in FairDD, the
  whole synthetic batch of the class is matched against every group target.
- the result is a scalar tensor (strategy ``"weighted"``: one value per target).

Where the groups come from (first found wins):

1. a ``groups=`` keyword at call time (``weights=`` for mode ``"weights"``);
2. a :class:`~ddaudit.hooks.context.GroupTagged` real batch;
3. the current :func:`~ddaudit.hooks.context.group_context`.

``groups=`` and ``weights=`` are consumed by the wrapper and never reach the loss;
a tagged batch reaches it as a plain tensor. Group ids must be integers, one per row.

Several protected attributes: ``groups`` may be an ``(n, K)`` integer table of each
row's attribute values. The loss is then made fair over their intersection (every
combination of values is a group), or over the columns ``attribute=`` picks (one
index: that attribute alone; a list: the intersection of those); see
:func:`~ddaudit.mitigate.groups.fold_attributes`.

Modes
-----
- ``sync`` (FairDD): ``sum_g loss(real[g], syn)`` over the groups present
  (``reduce="mean"`` divides by their number ``K``).
- ``barycenter`` (COBRA): match the mean of the group means, one target.
- ``weights``: match the ``w``-weighted mean of the real rows (e.g. KDE weights).
- ``none``: pass-through.

Strategies
----------
- ``loop``: one loss call per group present (``sync`` only); works for any loss.
- ``rescale``: one call on rows rescaled by :func:`~ddaudit.mitigate.groups.row_scales`,
  for losses that see ``real`` only through its row mean (declare ``mean_matching=True``).
  ``barycenter`` and ``weights`` are then exact. ``sync`` is returned as ``K`` times
  the barycenter loss, which for a squared Euclidean distance of means equals the
  per-group sum minus ``sum_g ||mu_g - mu_bar||^2``, a term free of ``syn``: the
  loss differs from FairDD's by that constant and its gradient w.r.t. ``syn`` is the same.
- ``weighted``: one call with ``row_weights=`` an ``(n, T)`` tensor whose columns
  (summing to 1) define ``T`` weighted real targets; the loss returns ``(T,)``
  values (see :func:`~ddaudit.mitigate.groups.target_weights`). Exact for every
  mode and any loss that can consume weighted means (e.g. a weighted real gradient).
- ``auto``: ``rescale`` if ``mean_matching=True``, else ``loop``.

Edge cases
----------
Absent groups are skipped (as FairDD). With a single group present the loss is
called unchanged on the batch (identical to vanilla; ``weighted`` passes one uniform
column). Groups with fewer than ``min_group_size`` rows are dropped (not counted in
``K``), a :class:`SmallGroupWarning` is issued and ``stats.skipped_groups`` counts
them; when no group is large enough the vanilla loss on the whole batch is returned
and ``stats.fallback_calls`` counts it. Statistics live on each wrapper (``.stats``).
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from ddaudit.errors import ConfigError, InputError
from ddaudit.hooks.context import current_group_context, untag
from ddaudit.mitigate.groups import (
    check_groups,
    check_min_group_size,
    check_mode,
    check_weights,
    fold_attributes,
    kept_groups,
    row_scales,
    target_weights,
)

STRATEGIES = ("auto", "rescale", "loop", "weighted")
REDUCES = ("sum", "mean")

ERR_STRATEGY = "unknown strategy {strategy!r}; use one of: auto, rescale, loop, weighted"
ERR_REDUCE = "unknown reduce {reduce!r}; use 'sum' (FairDD) or 'mean'"
ERR_NEEDS_MEAN = (
    "mode {mode!r} matches one weighted real mean, which a per-group loop cannot form; "
    "declare mean_matching=True (strategy='rescale') or use strategy='weighted' with a loss taking row_weights"
)
ERR_NO_GROUPS = (
    "mode {mode!r} needs the protected group of every real row: pass groups=, "
    "tag the batch with GroupTagged(real, groups), or call inside group_context(...)"
)
ERR_NO_WEIGHTS = (
    "mode 'weights' needs one weight per real row: pass weights=, "
    "tag the batch with GroupTagged(real, groups, weights), or call inside group_context(weights=...)"
)
ERR_ATTRIBUTE = "attribute={attribute!r} must be a column index or a list of them, for (n, K) groups"
ERR_ARGS = "a fair matching loss is called as loss(real, syn, ...); missing {missing}"
ERR_REAL = "real must be a tensor (or a tuple of tensors) whose first dimension indexes samples, got {kind}"
ERR_REAL_ROWS = "the tensors of a tuple real batch must share their first dimension, got {sizes}"
ERR_RESCALE_REAL = "strategy 'rescale' multiplies real rows, so real must be one floating-point tensor"
ERR_WEIGHTED_OUTPUT = (
    "a loss wrapped with strategy='weighted' must return one value per row_weights column, "
    "shape ({targets},); got {shape}"
)

SMALL_GROUP_MESSAGE = (
    "fair_matching dropped groups with fewer than min_group_size={min_group_size} rows; "
    "wrapper.stats.skipped_groups counts them"
)
FALLBACK_MESSAGE = (
    "fair_matching found no group with min_group_size={min_group_size} rows and used the "
    "vanilla loss on the whole batch; wrapper.stats.fallback_calls counts these calls"
)


class SmallGroupWarning(UserWarning):
    """A group was too small to be matched on its own (see ``min_group_size``)."""


@dataclass
class MatchingStats:
    """What one wrapped loss has done; ``reset()`` to start counting again.

    ``calls``: calls of the wrapper. ``passthrough_calls``: calls that ran the loss
    unchanged (mode ``none``, or one group present). ``fallback_calls``: calls in which
    no group reached ``min_group_size`` (vanilla loss used). ``group_terms``: group
    targets matched, ``K`` per call (1 per call in mode ``weights``).
    ``skipped_groups``: groups dropped for having fewer than ``min_group_size`` rows.
    ``groups_seen``: group id -> number of calls in which it was matched.
    """

    calls: int = 0
    passthrough_calls: int = 0
    fallback_calls: int = 0
    group_terms: int = 0
    skipped_groups: int = 0
    groups_seen: Counter = field(default_factory=Counter)

    def reset(self) -> None:
        self.calls = self.passthrough_calls = self.fallback_calls = 0
        self.group_terms = self.skipped_groups = 0
        self.groups_seen = Counter()

    def as_dict(self) -> dict:
        """Plain values (group ids as keys), for reports and JSON."""
        return {
            "calls": self.calls,
            "passthrough_calls": self.passthrough_calls,
            "fallback_calls": self.fallback_calls,
            "group_terms": self.group_terms,
            "skipped_groups": self.skipped_groups,
            "groups_seen": {int(g): int(n) for g, n in sorted(self.groups_seen.items())},
        }


@dataclass(frozen=True)
class _Settings:
    mode: str
    reduce: str
    strategy: str
    min_group_size: int
    attribute: int | tuple[int, ...] | None = None


def _leading_names(fn) -> tuple[str | None, str | None]:
    """Names of the loss's first two parameters, so real/syn may be passed by keyword."""
    try:
        parameters = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None, None
    names: list[str | None] = [
        p.name if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD else None
        for p in parameters[:2]
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    names += [None] * (2 - len(names))
    return names[0], names[1]


def _num_rows(real) -> int:
    if isinstance(real, torch.Tensor) and real.ndim >= 1:
        return int(real.shape[0])
    if isinstance(real, (tuple, list)) and real and all(isinstance(t, torch.Tensor) and t.ndim >= 1 for t in real):
        sizes = [int(t.shape[0]) for t in real]
        if len(set(sizes)) != 1:
            raise InputError(ERR_REAL_ROWS.format(sizes=sizes))
        return sizes[0]
    raise InputError(ERR_REAL.format(kind=type(real).__name__))


def _device(real) -> torch.device:
    return (real if isinstance(real, torch.Tensor) else real[0]).device


def _take(real, mask: torch.Tensor):
    if isinstance(real, torch.Tensor):
        return real[mask]
    return type(real)(t[mask] for t in real)


class FairMatchingLoss:
    """A matching loss made group-fair; call it exactly like the loss it wraps.

    ``.stats`` (:class:`MatchingStats`) is this wrapper's own; a method accessed
    through different instances shares the stats of the one wrapper.
    """

    def __init__(self, fn, settings: _Settings, stats: MatchingStats | None = None) -> None:
        functools.update_wrapper(self, fn)
        self._fn = fn
        self._settings = settings
        self._real_name, self._syn_name = _leading_names(fn)
        self.stats = stats if stats is not None else MatchingStats()

    mode = property(lambda self: self._settings.mode)
    reduce = property(lambda self: self._settings.reduce)
    strategy = property(lambda self: self._settings.strategy)
    min_group_size = property(lambda self: self._settings.min_group_size)

    def __repr__(self) -> str:
        s = self._settings
        name = getattr(self._fn, "__qualname__", repr(self._fn))
        return f"<fair_matching {name} mode={s.mode} reduce={s.reduce} strategy={s.strategy}>"

    def __get__(self, instance, owner=None):
        if instance is None or not hasattr(self._fn, "__get__"):
            return self
        return FairMatchingLoss(self._fn.__get__(instance, owner), self._settings, self.stats)

    def _split(self, args: tuple, kwargs: dict):
        args = list(args)
        values = []
        for name in (self._real_name, self._syn_name):
            if args:
                values.append(args.pop(0))
            elif name is not None and name in kwargs:
                values.append(kwargs.pop(name))
            else:
                missing = "syn" if values else "real and syn"
                raise InputError(ERR_ARGS.format(missing=missing))
        return values[0], values[1], tuple(args)

    def __call__(self, *args, **kwargs):
        groups = kwargs.pop("groups", None)
        weights = kwargs.pop("weights", None)
        real, syn, rest = self._split(args, kwargs)
        real, tagged_groups, tagged_weights = untag(real)
        settings, stats = self._settings, self.stats
        stats.calls += 1
        if settings.mode == "none":
            stats.passthrough_calls += 1
            return self._fn(real, syn, *rest, **kwargs)

        n = _num_rows(real)
        device = _device(real)
        context = current_group_context()
        if settings.mode == "weights":
            weights = _first(weights, tagged_weights, context.weights if context else None)
            if weights is None:
                raise ConfigError(ERR_NO_WEIGHTS)
            weights = check_weights(weights, n).to(device)
            stats.group_terms += 1
            return self._one_target(real, syn, rest, kwargs, None, weights)

        groups = _first(groups, tagged_groups, context.groups if context else None)
        if groups is None:
            raise ConfigError(ERR_NO_GROUPS.format(mode=settings.mode))
        groups = check_groups(fold_attributes(groups, settings.attribute), n).to(device)
        kept, skipped = kept_groups(groups, settings.min_group_size)
        stats.skipped_groups += int(skipped.numel())
        if kept.numel() == 0:
            stats.fallback_calls += 1
            warnings.warn(
                FALLBACK_MESSAGE.format(min_group_size=settings.min_group_size), SmallGroupWarning, stacklevel=2
            )
            return self._fn(real, syn, *rest, **kwargs)
        if skipped.numel():
            warnings.warn(
                SMALL_GROUP_MESSAGE.format(min_group_size=settings.min_group_size), SmallGroupWarning, stacklevel=2
            )
        stats.group_terms += int(kept.numel())
        stats.groups_seen.update(int(g) for g in kept.tolist())
        if kept.numel() == 1 and not skipped.numel() and settings.strategy != "weighted":
            stats.passthrough_calls += 1
            return self._fn(real, syn, *rest, **kwargs)
        if settings.mode == "sync" and settings.strategy == "loop":
            return self._loop(real, syn, rest, kwargs, groups, kept)
        return self._one_target(real, syn, rest, kwargs, groups, None, num_groups=int(kept.numel()))

    def _loop(self, real, syn, rest, kwargs, groups, kept):
        """FairDD as published: one loss call per kept group, summed (or averaged)."""
        total = None
        for group in kept:
            term = self._fn(_take(real, groups == group), syn, *rest, **kwargs)
            total = term if total is None else total + term
        if self._settings.reduce == "mean":
            total = total / int(kept.numel())
        return total

    def _one_target(self, real, syn, rest, kwargs, groups, weights, num_groups: int = 1):
        """``rescale`` or ``weighted``: every mode in one loss call."""
        settings = self._settings
        if settings.strategy == "weighted":
            columns = target_weights(groups, settings.mode, weights, min_group_size=settings.min_group_size)
            out = self._fn(real, syn, *rest, row_weights=columns.to(device=_device(real)), **kwargs)
            targets = columns.shape[1]
            if not isinstance(out, torch.Tensor) or out.ndim < 1 or out.shape[0] != targets:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ConfigError(ERR_WEIGHTED_OUTPUT.format(targets=targets, shape=shape))
            if settings.mode != "sync":
                return out[0]
            return out.sum(0) if settings.reduce == "sum" else out.mean(0)
        if not isinstance(real, torch.Tensor) or not real.is_floating_point():
            raise InputError(ERR_RESCALE_REAL)
        scales = row_scales(groups, settings.mode, weights, min_group_size=settings.min_group_size, dtype=real.dtype)
        scales = scales.to(real.device).reshape(-1, *([1] * (real.ndim - 1)))
        out = self._fn(real * scales, syn, *rest, **kwargs)
        if settings.mode == "sync" and settings.reduce == "sum":
            out = out * num_groups
        return out


def _first(*values):
    for value in values:
        if value is not None:
            return value
    return None


def fair_matching(
    fn=None,
    *,
    mode: str = "sync",
    reduce: str = "sum",
    strategy: str = "auto",
    min_group_size: int = 1,
    mean_matching: bool = False,
    attribute: int | Sequence[int] | None = None,
):
    """Decorate (or wrap at run time) a per-class matching loss so it matches groups fairly.

    ``attribute`` picks the columns of ``(n, K)`` groups to be fair over (default: the
    intersection of all of them).

    ``@fair_matching``, ``@fair_matching(mode="barycenter", mean_matching=True)`` or
    ``fair_matching(mode="sync")(existing_loss)``. Wrapping a loss that is already
    wrapped re-wraps the original function with the new settings (and fresh stats).
    See the module docstring for the loss contract, modes and strategies.
    """
    check_mode(mode)
    if reduce not in REDUCES:
        raise ConfigError(ERR_REDUCE.format(reduce=reduce))
    if strategy not in STRATEGIES:
        raise ConfigError(ERR_STRATEGY.format(strategy=strategy))
    check_min_group_size(min_group_size)
    if strategy == "auto":
        strategy = "rescale" if mean_matching else "loop"
    if strategy == "loop" and mode in ("barycenter", "weights"):
        raise ConfigError(ERR_NEEDS_MEAN.format(mode=mode))
    if attribute is not None:
        columns = [attribute] if isinstance(attribute, int) else list(attribute)
        if not columns or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in columns):
            raise ConfigError(ERR_ATTRIBUTE.format(attribute=attribute))
        attribute = attribute if isinstance(attribute, int) else tuple(columns)
    settings = _Settings(mode=mode, reduce=reduce, strategy=strategy, min_group_size=min_group_size,
                         attribute=attribute)

    def wrap(loss) -> FairMatchingLoss:
        if isinstance(loss, FairMatchingLoss):
            loss = loss._fn
        if not callable(loss):
            raise ConfigError(f"fair_matching wraps a callable loss, got {type(loss).__name__}")
        return FairMatchingLoss(loss, settings)

    return wrap if fn is None else wrap(fn)
