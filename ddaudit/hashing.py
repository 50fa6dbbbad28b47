"""The one content hash: cache keys and provenance name data by every byte of it.

A dataset changed anywhere, even in one pixel, gets another hash, so no cache
serves stale results and no report claims the wrong input.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np


def content_hash(*tensors) -> str:
    """SHA-256 of the dtypes, shapes and every byte of *tensors* (torch tensors or numpy arrays)."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().cpu().numpy() if hasattr(tensor, "detach") else np.asarray(tensor)
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def payload_hash(payload: dict) -> str:
    """SHA-256 of a JSON-able description of a computation (keys sorted, so order does not matter)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def cache_key(payload: dict) -> str:
    """A short stable name for a JSON-able description of a computation."""
    return payload_hash(payload)[:20]
