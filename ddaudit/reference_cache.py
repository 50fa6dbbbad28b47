"""Reference predictions computed once, keyed by everything that determines them.

An audit's references (evaluators trained on a random real subset, or on the
whole real training set) depend only on the real data, the pixel space, the
protocol and the seeds. :class:`ReferenceCache` keeps their predictions in
memory (several audits of one run share them, e.g. the demo's two sets) and,
for the expensive full-data reference, on disk under ``cache_dir``.

The key holds a SHA-256 of the *whole* content of the training tensors
(:func:`ddaudit.hashing.content_hash`), so a dataset changed anywhere, even in one pixel,
misses the cache instead of being served stale predictions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ddaudit.hashing import cache_key, content_hash  # noqa: F401 - importable from here as before


class ReferenceCache:
    """Reference predictions by key: in *memory* (a dict the caller may share
    between audits) and, for ``full`` references, as ``.npy`` files in *cache_dir*."""

    #: References worth keeping on disk: training on the whole real set is the slow one.
    ON_DISK = ("full",)

    def __init__(self, memory: dict | None = None, cache_dir: str | Path | None = None):
        self.memory = memory if memory is not None else {}
        self.cache_dir = None if cache_dir is None else Path(cache_dir)

    def path(self, name: str, key: dict) -> Path | None:
        """Where the predictions for (*name*, *key*) live on disk, or None when kept in memory only."""
        if self.cache_dir is None or name not in self.ON_DISK:
            return None
        return self.cache_dir / f"reference-{name}-{cache_key(key)}.npy"

    def get(self, name: str, key: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached predictions for (*name*, *key*), computed (and stored) on a miss."""
        digest = f"{name}-{cache_key(key)}"
        if digest in self.memory:
            return self.memory[digest]
        path = self.path(name, key)
        if path is not None and path.exists():
            preds = np.load(path, allow_pickle=False)
        else:
            preds = compute()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                np.save(path, preds, allow_pickle=False)
        self.memory[digest] = preds
        return preds


#: The name this class had inside :mod:`ddaudit.auditing`.
ReferenceStore = ReferenceCache
