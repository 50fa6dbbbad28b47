"""The loss class a patch puts in place of ``torch.nn.CrossEntropyLoss``.

Expert training (MTT) and gradient matching (DC, forks) both need to see every
cross-entropy the codebase computes and decide, call by call, whether to score
it their own way or let the plain loss run.
"""

from __future__ import annotations

from collections.abc import Callable


def intercepting_criterion(base: type, on_criterion: Callable, doc: str) -> type:
    """A subclass of the loss class ``base``, under its name, whose ``forward(input, target)``
    returns ``on_criterion(module, input, target, plain_forward)``."""

    class GroupAwareCrossEntropyLoss(base):
        def forward(self, input, target):
            return on_criterion(self, input, target, super().forward)

    GroupAwareCrossEntropyLoss.__name__ = base.__name__
    GroupAwareCrossEntropyLoss.__doc__ = doc
    return GroupAwareCrossEntropyLoss
