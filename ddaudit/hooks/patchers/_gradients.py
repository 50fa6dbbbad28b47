"""Gradient matching (DC/DSA) made fair through a side channel around ``match_loss``.

In ``main.py`` the real gradient is computed inline and only ``match_loss`` sees
it, as a list of per-layer tensors without images or groups::

    loss_real = criterion(net(img_real), lab_real)
    gw_real = list(g.detach().clone() for g in torch.autograd.grad(loss_real, net_parameters))
    ...
    loss += match_loss(gw_syn, gw_real, args)

For the default per-row cosine (``dis_metric='ours'``) and ``'cos'`` the sum over
groups is not a function of one mean gradient, so FairDD needs one real gradient
per group. Three cooperating patches provide it:

1. ``torch.nn.CrossEntropyLoss`` (looked up when ``criterion`` is built) returns the
   same mean loss but, for a real class batch, keeps the per-sample losses and the
   group of each row;
2. ``torch.autograd.grad`` answers that loss as usual but keeps its graph;
3. ``match_loss`` then returns ``sum_g match_loss(gw_syn, grad(mean_{i in g} l_i))``
   over the groups present (FairDD; divided by their number when not faithful),
   through :func:`~ddaudit.hooks.fair_matching` with the codebase's own
   ``match_loss`` for each term, so every ``dis_metric`` is covered.

Modes ``barycenter`` and ``weights`` need no side channel: the criterion returns
``mean_i(s_i * l_i)`` with :func:`~ddaudit.mitigate.groups.row_scales`, whose gradient
is the barycenter of the group gradients (or the weighted mean gradient).
"""

from __future__ import annotations

import inspect
import sys
import warnings
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ddaudit.errors import PatchError
from ddaudit.hooks.fair_matching import SmallGroupWarning, fair_matching
from ddaudit.hooks.patchers._criterion import intercepting_criterion
from ddaudit.mitigate.groups import row_scales

ERR_GRAD_NOT_SEEN = (
    "{codebase}: the real batch's loss never reached torch.autograd.grad before match_loss; "
    "the patcher expects gw_real = torch.autograd.grad(criterion(net(img_real), lab_real), params)"
)
ERR_FOREIGN_GRADIENTS = (
    "{codebase}: match_loss received real gradients that differ from the ones computed for the last "
    "real batch; the patcher expects gw_real to be the detached gradients of criterion(net(img_real), lab_real)"
)


@dataclass
class _RealLoss:
    loss: torch.Tensor
    per_sample: torch.Tensor
    groups: torch.Tensor
    params: object = None
    grads: tuple | None = None


class RealGradientChannel:
    """Criterion class, ``autograd.grad`` and ``match_loss`` replacements sharing one state."""

    def __init__(self, session) -> None:
        self.session = session
        self._loss: _RealLoss | None = None
        self._grads: _RealLoss | None = None
        self._original_grad = None
        self._original_match_loss = None
        reduce = "sum" if session.faithful else "mean"
        self._fair = fair_matching(mode="sync", reduce=reduce, strategy="loop", min_group_size=session.min_group_size)(
            self._group_term
        )

    # 1. the criterion ---------------------------------------------------------------

    def criterion_class(self, base: type) -> type:
        return intercepting_criterion(
            base, self.on_criterion, "``CrossEntropyLoss`` that remembers the real class batch's per-sample losses."
        )

    def on_criterion(self, module, input, target, plain):
        session = self.session
        if (
            module.reduction != "mean"
            or not torch.is_grad_enabled()
            or not isinstance(input, torch.Tensor)
            or not input.requires_grad
            or input.ndim != 2
            or not isinstance(target, torch.Tensor)
            or target.ndim != 1
            or target.is_floating_point()
            or not session.called_from_script(sys._getframe(1))
        ):
            return plain(input, target)
        draw = session.recorder.peek_single(input.shape[0])
        if draw is None:
            return plain(input, target)
        cls = session.table.class_of(draw.indices)
        first = int(target[0])
        if (cls is not None and first != cls) or not bool((target == first).all()):
            return plain(input, target)
        session.recorder.claim(input.shape[0], single=True)
        table = session.table
        groups = table.groups_of(draw.indices, input.device)
        session.summary.observe(cls, groups, table.class_groups(cls) if cls is not None else None)
        if session.mode == "none":
            session.summary.count("criterion")
            return plain(input, target)
        per_sample = F.cross_entropy(
            input, target, weight=module.weight, ignore_index=module.ignore_index,
            reduction="none", label_smoothing=module.label_smoothing,
        )
        if session.mode in ("barycenter", "weights"):
            scales = row_scales(
                groups, session.mode, table.weights_of(draw.indices, input.device), min_group_size=session.min_group_size
            ).to(per_sample.dtype)
            session.summary.count("criterion")
            return (scales * per_sample).mean()
        loss = per_sample.mean()
        self._loss = _RealLoss(loss=loss, per_sample=per_sample, groups=groups)
        self._grads = None
        return loss

    # 2. torch.autograd.grad -----------------------------------------------------------

    def patched_grad(self, original):
        self._original_grad = original
        signature = inspect.signature(original)

        def grad(outputs, inputs, *args, **kwargs):
            pending = self._loss
            if pending is None or outputs is not pending.loss:
                return original(outputs, inputs, *args, **kwargs)
            self._loss = None
            bound = signature.bind(outputs, inputs, *args, **kwargs)
            bound.arguments["retain_graph"] = True
            grads = original(*bound.args, **bound.kwargs)
            pending.params, pending.grads = inputs, grads
            self._grads = pending
            return grads

        grad.__wrapped__ = original
        grad.__doc__ = original.__doc__
        return grad

    # 3. match_loss --------------------------------------------------------------------

    def patched_match_loss(self, original):
        self._original_match_loss = original

        def match_loss(gw_syn, gw_real, args, *rest, **kwargs):
            pending, self._grads = self._grads, None
            if pending is None:
                if self._loss is not None:
                    self._loss = None
                    raise PatchError(ERR_GRAD_NOT_SEEN.format(codebase=self.session.codebase))
                return original(gw_syn, gw_real, args, *rest, **kwargs)
            gw_real = list(gw_real)
            if len(gw_real) != len(pending.grads) or not torch.equal(gw_real[0], pending.grads[0]):
                raise PatchError(ERR_FOREIGN_GRADIENTS.format(codebase=self.session.codebase))
            before = self._fair.stats.skipped_groups
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SmallGroupWarning)
                loss = self._fair(pending.per_sample, gw_syn, pending.params, original, args, rest, kwargs,
                                  groups=pending.groups)
            self.session.summary.dropped_small_groups += self._fair.stats.skipped_groups - before
            self.session.summary.count("match_loss")
            return loss

        match_loss.__wrapped__ = original
        match_loss.__doc__ = original.__doc__
        return match_loss

    def _group_term(self, per_sample_rows, gw_syn, params, original, args, rest, kwargs):
        """FairDD's term for one group: the codebase's match_loss against that group's gradient."""
        grads = self._original_grad(per_sample_rows.mean(), params, retain_graph=True)
        return original(gw_syn, [g.detach().clone() for g in grads], args, *rest, **kwargs)
