"""Check that an adapter's named functions have the shape their ``[matching] kind`` says, before the script runs.

An adapter that names the wrong function would otherwise be accepted and then
fail deep inside the patched call (a scalar loss where features were expected).
Two cheap checks, each a one-line :class:`~ddaudit.errors.PatchError` (exit 2):

- the signature: ``feature`` functions take one required tensor (the activations,
  more arguments only with defaults); ``feature_loss`` functions take at least two
  positional tensors (real, synthetic);
- a dry call on tiny seeded tensors when the function needs nothing else: a
  ``feature`` function must return per-row values, a ``feature_loss`` one a single
  value. A dry call that raises tells nothing and is not held against the function.
"""

from __future__ import annotations

import inspect

import torch

from ddaudit.errors import PatchError

ERR_SHAPE = "adapter {name}: [matching] {role} {label} {problem}; {hint}"
HINT_LOSS = 'a function of real and synthetic features that returns a loss is kind = "feature_loss"'
HINT_FEATURE = 'a function of one batch of activations that returns per-row features is kind = "feature"'

#: Tiny activations for the dry call: 20 rows (two blocks of 10), 4 channels of 3x3.
_DRY_ROWS, _DRY_SHAPE = 20, (4, 3, 3)


def _positional(function) -> tuple[int, int, bool] | None:
    """``(required, accepted, varargs)`` positional parameters, or None when the signature is unknown."""
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in positional)
    varargs = any(p.kind is p.VAR_POSITIONAL for p in parameters)
    return required, len(positional), varargs


def _dry(function, *shapes):
    """The function's output on seeded tensors of *shapes*, or None when the call raises."""
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(shape, generator=generator) for shape in shapes]
    try:
        with torch.no_grad():
            return function(*inputs)
    except Exception:  # noqa: BLE001 - the dry call only refuses on evidence, never on its own failure
        return None


def check_feature_function(function, *, name: str, label: str) -> None:
    """A ``feature`` function: one batch of activations in, values per row out."""
    shape = _positional(function)
    if shape is not None:
        required, accepted, varargs = shape
        if required > 1:
            raise PatchError(ERR_SHAPE.format(
                name=name, role="feature_function", label=label,
                problem=f"takes {required} required arguments, not one batch of activations", hint=HINT_LOSS))
        if required == 0 and accepted == 0 and not varargs:
            raise PatchError(ERR_SHAPE.format(
                name=name, role="feature_function", label=label, problem="takes no argument", hint=HINT_FEATURE))
    out = _dry(function, (_DRY_ROWS, *_DRY_SHAPE))
    if isinstance(out, torch.Tensor) and (out.ndim == 0 or out.shape[0] != _DRY_ROWS):
        raise PatchError(ERR_SHAPE.format(
            name=name, role="feature_function", label=label,
            problem=f"returned shape {tuple(out.shape)} for {_DRY_ROWS} rows of activations, not one value per row",
            hint=HINT_LOSS))


def check_feature_loss(function, *, name: str, label: str) -> None:
    """A ``feature_loss`` function: real and synthetic activations in, one loss value out."""
    shape = _positional(function)
    if shape is not None:
        required, accepted, varargs = shape
        if accepted < 2 and not varargs:
            raise PatchError(ERR_SHAPE.format(
                name=name, role="loss_function", label=label,
                problem=f"takes {accepted} positional argument{'s' if accepted != 1 else ''}, not (real, synthetic)",
                hint=HINT_FEATURE))
        if required > 2:
            return  # needs more than the two feature batches: the signature is all that can be checked
    out = _dry(function, (_DRY_ROWS, *_DRY_SHAPE), (_DRY_ROWS // 2, *_DRY_SHAPE))
    if isinstance(out, torch.Tensor) and out.numel() != 1:
        raise PatchError(ERR_SHAPE.format(
            name=name, role="loss_function", label=label,
            problem=f"returned shape {tuple(out.shape)}, not a single loss value", hint=HINT_FEATURE))
