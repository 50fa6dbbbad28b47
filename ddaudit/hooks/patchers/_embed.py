"""Distribution matching made fair through the embedding function.

DatasetCondensation's DM loss is inline::

    output_real = embed(img_real).detach(); output_syn = embed(img_syn)
    loss += torch.sum((torch.mean(output_real, dim=0) - torch.mean(output_syn, dim=0))**2)

Only ``embed`` can be intercepted. For the real batch (input without grad) the
wrapper returns rows rescaled by :func:`~ddaudit.mitigate.groups.row_scales`, so the
unchanged ``torch.mean`` yields the barycenter of the group means ``mu_bar`` (or
the weighted mean in mode ``weights``). For FairDD's synchronized loss

    sum_g ||mu_g - m||^2 = K ||mu_bar - m||^2 + sum_g ||mu_g - mu_bar||^2

both feature sets are multiplied by ``sqrt(K)`` (:func:`~ddaudit.mitigate.groups.sync_scale`)
and one extra feature column is appended: ``sqrt(sum_g ||mu_g - mu_bar||^2)`` on
every real row, 0 on synthetic rows. The script's own loss then *equals*
FairDD's value, not just its gradient. The normalised variant (``faithful=False``)
divides the whole sum by ``K``. The BatchNorm branch embeds all classes at once;
the batch is split into its class blocks by the draws that produced it.
"""

from __future__ import annotations

import functools
import math
import sys

import torch

from ddaudit.errors import PatchError
from ddaudit.mitigate.groups import kept_groups, row_scales, sync_scale

ERR_UNRESOLVED_BATCH = (
    "{codebase}: a real batch of {rows} rows reached embed() but no get_images draw of that size was "
    "recorded; the patcher expects get_images to draw np.random.permutation(indices_class[c])[:n]"
)
ERR_SYN_FIRST = (
    "{codebase}: embed() saw a synthetic batch before the real batch of its class; the patcher expects "
    "output_real = embed(img_real) before output_syn = embed(img_syn), as in main_DM.py"
)
ERR_SYN_BLOCKS = (
    "{codebase}: embed() saw {rows} synthetic rows for {blocks} real class blocks; "
    "expected the same number of classes on both sides"
)
ERR_NO_EMBED = "{codebase}: get_network returned a {kind} without a {method}() method; the matching needs net.{method}(x)"
ERR_NO_REAL_FORWARD = (
    "{codebase}: {function} received real features before any real batch went through the network; "
    "the patcher expects net(real_batch) before {function}(...)"
)
ERR_NOT_FEATURES = (
    "{codebase}: {function} returned {shape}, not one value per row; a function of real and synthetic "
    'features that returns a loss is kind = "feature_loss"'
)
ERR_FEATURE_SHAPE = (
    "{codebase}: --mode sync needs real features of shape (rows, features) at the matching site; got {shape}"
)


class BlockRescaler:
    """The arithmetic shared by every feature-mean matcher: real class blocks in, rows the script's mean should see out.

    :meth:`claim` resolves a real batch into the draws (class blocks) that produced
    it and records their groups; :meth:`real` rescales a real feature batch block by
    block (and, in ``sync``, appends the spread column); :meth:`synthetic` applies the
    matching factor and zero column to the synthetic features of the same blocks.
    """

    def __init__(self, session) -> None:
        self.session = session

    def claim(self, rows: int) -> list:
        """``[(indices, groups, weights)]`` per class block of a real batch of *rows* rows."""
        session = self.session
        draws = session.recorder.claim(rows)
        if draws is None:
            raise PatchError(ERR_UNRESOLVED_BATCH.format(codebase=session.codebase, rows=rows))
        table, summary = session.table, session.summary
        blocks = []
        for draw in draws:
            groups = table.groups_of(draw.indices)
            summary.observe(draw.cls, groups, table.class_groups(draw.cls) if draw.cls is not None else None)
            blocks.append((draw.indices, groups, table.weights_of(draw.indices)))
        return blocks

    def real(self, out: torch.Tensor, blocks: list) -> tuple[torch.Tensor, list[tuple[float, bool]]]:
        """The real features rescaled block by block, and the plan for the synthetic side."""
        pieces, plan, start = [], [], 0
        for indices, groups, weights in blocks:
            rows = out[start : start + len(indices)]
            start += len(indices)
            piece, step = self._rescale(
                rows, None if groups is None else groups.to(out.device), None if weights is None else weights.to(out.device)
            )
            pieces.append(piece)
            plan.append(step)
        return (pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)), plan

    def _rescale(self, rows: torch.Tensor, groups, weights) -> tuple[torch.Tensor, tuple[float, bool]]:
        """One class block: the rows the script's mean should see, and the synthetic factor."""
        mode, minimum = self.session.mode, self.session.min_group_size
        if mode == "none":
            return rows, (1.0, False)
        scales = row_scales(groups, mode, weights, min_group_size=minimum).to(rows.device, rows.dtype)
        scaled = rows * scales.view(-1, *([1] * (rows.ndim - 1)))
        if mode != "sync":
            return scaled, (1.0, False)
        if rows.ndim != 2:
            raise PatchError(ERR_FEATURE_SHAPE.format(codebase=self.session.codebase, shape=tuple(rows.shape)))
        kept, skipped = kept_groups(groups, minimum)
        self.session.summary.dropped_small_groups += int(skipped.numel())
        k = int(kept.numel())
        centres = torch.stack([rows[groups == g].detach().double().mean(0) for g in kept])
        spread = ((centres - centres.mean(0)) ** 2).sum()
        if self.session.faithful:
            factor, constant = sync_scale(groups, min_group_size=minimum), spread
        else:
            factor, constant = 1.0, spread / k
        column = torch.full((rows.shape[0], 1), math.sqrt(float(constant)), dtype=rows.dtype, device=rows.device)
        return torch.cat([scaled * factor, column], dim=1), (factor, True)

    def synthetic(self, out: torch.Tensor, plan: list[tuple[float, bool]] | None) -> torch.Tensor:
        if self.session.mode != "sync":
            return out
        if plan is None:
            raise PatchError(ERR_SYN_FIRST.format(codebase=self.session.codebase))
        if out.shape[0] % len(plan):
            raise PatchError(ERR_SYN_BLOCKS.format(codebase=self.session.codebase, rows=out.shape[0], blocks=len(plan)))
        size = out.shape[0] // len(plan)
        pieces = []
        for i, (factor, column) in enumerate(plan):
            block = out[i * size : (i + 1) * size] * factor
            if column:
                block = torch.cat([block, block.new_zeros(block.shape[0], 1)], dim=1)
            pieces.append(block)
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces, dim=0)


def wrapping_factory(original, wrap_network):
    """A stand-in for a network factory (``get_network``) that passes every network it builds through *wrap_network*."""

    def build(*args, **kwargs):
        return wrap_network(original(*args, **kwargs))

    build.__wrapped__ = original
    return build


def wrap_method_once(net, name: str, make):
    """Replace method *name* of *net* (of its ``module`` under DataParallel) by ``make(method)``, once:
    a method already wrapped by ddaudit is left as it is. Returns *net*."""
    target = net.module if isinstance(net, torch.nn.DataParallel) else net
    method = getattr(target, name)
    if not getattr(method, "__ddaudit_fair__", False):
        setattr(target, name, make(method))
    return net


class EmbedInterceptor:
    """Wraps the embedding method (``net.embed``; IDM: ``embed_channel_avg``) of every network built."""

    def __init__(self, session, method: str = "embed") -> None:
        self.session = session
        self.method = method
        self.blocks = BlockRescaler(session)
        self._plan: list[tuple[float, bool]] | None = None

    def wrap_network(self, net):
        target = net.module if isinstance(net, torch.nn.DataParallel) else net
        embed = getattr(target, self.method, None)
        if embed is None or not callable(embed):
            raise PatchError(
                ERR_NO_EMBED.format(codebase=self.session.codebase, kind=type(target).__name__, method=self.method)
            )
        return wrap_method_once(net, self.method, self.wrap)

    def wrap(self, embed):
        @functools.wraps(embed)
        def fair_embed(x, *args, **kwargs):
            out = embed(x, *args, **kwargs)
            if not self.session.called_from_script(sys._getframe(1)):
                return out
            if isinstance(x, torch.Tensor) and x.requires_grad:
                plan, self._plan = self._plan, None
                return self.blocks.synthetic(out, plan)
            out, self._plan = self.blocks.real(out, self.blocks.claim(out.shape[0]))
            self.session.summary.count(self.method)
            return out

        fair_embed.__ddaudit_fair__ = True
        return fair_embed


class ForwardFeatureInterceptor:
    """Feature matching whose real batch goes through ``net(x)`` and whose features pass a function.

    DataDAM-style: the network's ``forward`` on a real batch (no grad, called from
    the script) resolves its class blocks and rescales the output (its first item
    when it returns a tuple); every later call of the wrapped feature function
    (attention maps of hooked activations) is rescaled with the same blocks, the
    synthetic side with the same plan.
    """

    def __init__(self, session) -> None:
        self.session = session
        self.rescaler = BlockRescaler(session)
        self._blocks = None
        self._plan = None

    def wrap_network(self, net):
        return wrap_method_once(net, "forward", self._forward)

    def _forward(self, forward):
        session = self.session

        @functools.wraps(forward)
        def fair_forward(x, *args, **kwargs):
            out = forward(x, *args, **kwargs)
            if not isinstance(x, torch.Tensor) or not session.called_from_script(sys._getframe(1)):
                return out
            first = out[0] if isinstance(out, tuple) else out
            if x.requires_grad:
                first = self.rescaler.synthetic(first, self._plan)
            else:
                self._blocks = self.rescaler.claim(first.shape[0])
                first, self._plan = self.rescaler.real(first, self._blocks)
                session.summary.count("forward")
            return (first, *out[1:]) if isinstance(out, tuple) else first

        fair_forward.__ddaudit_fair__ = True
        return fair_forward

    def wrap_feature(self, function):
        session = self.session
        name = getattr(function, "__name__", "the feature function")

        @functools.wraps(function)
        def fair_feature(features, *args, **kwargs):
            out = function(features, *args, **kwargs)
            if not session.called_from_script(sys._getframe(1)):
                return out
            if not isinstance(out, torch.Tensor) or out.ndim == 0:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise PatchError(ERR_NOT_FEATURES.format(codebase=session.codebase, function=name, shape=shape))
            if features.requires_grad:
                return self.rescaler.synthetic(out, self._plan)
            if self._blocks is None:
                raise PatchError(ERR_NO_REAL_FORWARD.format(codebase=session.codebase, function=name))
            out, _ = self.rescaler.real(out, self._blocks)
            session.summary.count(name)
            return out

        fair_feature.__wrapped__ = function
        return fair_feature
