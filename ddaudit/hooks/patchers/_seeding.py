"""Reproducible runs of codebases that reseed from the wall clock.

DatasetCondensation and mtt-distillation call
``torch.random.manual_seed(int(time.time() * 1000) % 100000)`` in ``get_network``
and derive every DSA seed from ``time.time()``; their numpy draws use the global
generator, never seeded. A run is reproducible only if those clock reads are
pinned and the global generators start from a known state.
"""

from __future__ import annotations

import os
import random
import sys
import time

import numpy as np
import torch

from ddaudit.hooks.patchers._stack import PatchStack

#: A whole number of 100-second periods, so ``int(t * 1000) % 100000`` starts at 0.
CLOCK_ORIGIN = 1_700_000_000.0


class PinnedClock:
    """``time.time`` that answers the codebase's own frames from a counter.

    A call whose caller's file lies under one of ``roots`` returns
    ``CLOCK_ORIGIN + seed + calls / 1000`` (plus half a millisecond so the
    ``int(t * 1000)`` seeds never round down), so the n-th clock-derived seed of a
    run is ``(1000 * seed + n) % 100000``, distinct for consecutive calls. Every
    other caller (rich, torch, logging) gets the real clock. Durations the script
    measures itself therefore read about zero.
    """

    def __init__(self, seed: int, roots: list[str], real_time=time.time) -> None:
        self._base = CLOCK_ORIGIN + int(seed) + 0.0005
        self._roots = tuple(os.path.join(os.path.realpath(r), "") for r in roots)
        self._real_time = real_time
        self._inside: dict[str, bool] = {}
        self.calls = 0

    def covers(self, filename: str) -> bool:
        """Whether code in *filename* belongs to the codebase (answers are cached)."""
        inside = self._inside.get(filename)
        if inside is None:
            inside = os.path.realpath(filename).startswith(self._roots)
            self._inside[filename] = inside
        return inside

    def __call__(self) -> float:
        if self.covers(sys._getframe(1).f_code.co_filename):
            value = self._base + self.calls / 1000.0
            self.calls += 1
            return value
        return self._real_time()


def _save_generators():
    state = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None

    def restore() -> None:
        random.setstate(state[0])
        np.random.set_state(state[1])
        torch.set_rng_state(state[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)

    return restore


def pin_seeds(stack: PatchStack, seed: int, roots: list[str]) -> PinnedClock:
    """Seed python, numpy and torch with *seed* and pin the codebase's clock reads.

    The caller's generator states are restored when *stack* closes.
    """
    stack.callback(_save_generators())
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    clock = PinnedClock(seed, roots)
    stack.replace(time, "time", clock, name="time.time")
    return clock
