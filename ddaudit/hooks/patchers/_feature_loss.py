"""Layer-wise feature matching made fair at its loss function (CAFE-style ``criterion_middle(real_f, syn_f)``).

CAFE stacks one real batch per class, runs ``net(x)`` (logits and a list of layer
activations) on the real and the synthetic stack, and matches every layer with a
function of both activations that compares their class-block means and returns a
loss. :class:`FeatureLossInterceptor` wraps the network's ``forward`` (a real
forward, input without grad and called from the script, is noted; nothing is
changed) and the loss function. A loss call whose first argument has the rows of
the last real forward has its real class blocks (resolved from the recorded draws)
rescaled by :func:`~ddaudit.mitigate.groups.row_scales`, so every block mean the
loss forms is the mode's target:

- ``barycenter`` (COBRA): the mean over the groups present of the group means;
- ``sync`` (FairDD): the same target, and with ``--faithful`` both sides of each
  class block are multiplied by ``sqrt(K)`` (:func:`~ddaudit.mitigate.groups.sync_scale`):
  for a squared error of block means the loss is then FairDD's sum over groups
  minus ``sum_g ||mu_g - mu_bar||^2``, a term free of the synthetic images, so the
  gradient is FairDD's; ``--normalized`` leaves the factor at 1 (the sum over groups divided by ``K``);
- ``weights``: the weighted mean of each block (e.g. KDE weights).

Calls on other tensors (CAFE's class-mean term ``criterion_middle(last_syn, last_real)``
has one row per class) run unchanged and are counted in a note.
"""

from __future__ import annotations

import functools
import sys

import torch

from ddaudit.errors import PatchError
from ddaudit.hooks.patchers._embed import BlockRescaler, wrap_method_once
from ddaudit.mitigate.groups import row_scales, sync_scale

ERR_NOT_A_LOSS = (
    "{codebase}: {function} returned shape {shape} on real and synthetic features; "
    'kind = "feature_loss" needs a function returning one loss value'
)
ERR_SYN_BLOCKS = (
    "{codebase}: {function} got {rows} synthetic rows for {blocks} real class blocks; "
    "expected the same number of classes on both sides"
)
NOTE_PASSED = "{function}: {n} call(s) on tensors other than the last real batch's features ran unchanged"


class FeatureLossInterceptor:
    """Wraps ``net.forward`` (to note real forwards) and a loss of real and synthetic activations."""

    def __init__(self, session) -> None:
        self.session = session
        self.rescaler = BlockRescaler(session)
        self._forwards = 0
        self._rows: int | None = None
        self._claimed: tuple[int, list] | None = None
        self.passed = 0

    def wrap_network(self, net):
        return wrap_method_once(net, "forward", self._forward)

    def _forward(self, forward):
        session = self.session

        @functools.wraps(forward)
        def noting_forward(x, *args, **kwargs):
            if isinstance(x, torch.Tensor) and not x.requires_grad and session.called_from_script(sys._getframe(1)):
                self._forwards += 1
                self._rows = int(x.shape[0])
            return forward(x, *args, **kwargs)

        noting_forward.__ddaudit_fair__ = True
        return noting_forward

    def _blocks(self) -> list:
        """The class blocks of the last real forward, claimed from the draws once per forward."""
        if self._claimed is None or self._claimed[0] != self._forwards:
            self._claimed = (self._forwards, self.rescaler.claim(self._rows))
        return self._claimed[1]

    def wrap_loss(self, function):
        session = self.session
        name = getattr(function, "__name__", "the loss function")

        @functools.wraps(function)
        def fair_loss(real, syn, *args, **kwargs):
            if not session.called_from_script(sys._getframe(1)):
                return function(real, syn, *args, **kwargs)
            if not isinstance(real, torch.Tensor) or self._rows is None or real.ndim == 0 or real.shape[0] != self._rows:
                self.passed += 1
                return function(real, syn, *args, **kwargs)
            blocks = self._blocks()
            real, syn = self._rescale(real, syn, blocks, name)
            out = function(real, syn, *args, **kwargs)
            if not isinstance(out, torch.Tensor) or out.numel() != 1:
                shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise PatchError(ERR_NOT_A_LOSS.format(codebase=session.codebase, function=name, shape=shape))
            session.summary.count(name)
            return out

        fair_loss.__wrapped__ = function
        fair_loss.__ddaudit_fair__ = True
        return fair_loss

    def _rescale(self, real: torch.Tensor, syn, blocks: list, name: str):
        session = self.session
        if session.mode == "none":
            return real, syn
        if not isinstance(syn, torch.Tensor) or syn.ndim == 0 or syn.shape[0] % len(blocks):
            rows = syn.shape[0] if isinstance(syn, torch.Tensor) and syn.ndim else 0
            raise PatchError(ERR_SYN_BLOCKS.format(codebase=session.codebase, function=name, rows=rows, blocks=len(blocks)))
        size = syn.shape[0] // len(blocks)
        real_pieces, syn_pieces, start = [], [], 0
        for i, (indices, groups, weights) in enumerate(blocks):
            rows = real[start : start + len(indices)]
            start += len(indices)
            groups = None if groups is None else groups.to(real.device)
            weights = None if weights is None else weights.to(real.device)
            scales = row_scales(groups, session.mode, weights, min_group_size=session.min_group_size)
            factor = 1.0
            if session.mode == "sync" and session.faithful:
                factor = sync_scale(groups, min_group_size=session.min_group_size)
            shape = (-1, *([1] * (rows.ndim - 1)))
            real_pieces.append(rows * (scales.to(rows.device, rows.dtype) * factor).view(shape))
            block = syn[i * size : (i + 1) * size]
            syn_pieces.append(block * factor if factor != 1.0 else block)
        return torch.cat(real_pieces, dim=0), torch.cat(syn_pieces, dim=0)

    def finish(self, name: str) -> None:
        if self.passed:
            self.session.summary.note(NOTE_PASSED.format(function=name, n=self.passed))
