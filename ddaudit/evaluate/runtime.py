"""Process-wide CPU settings that make evaluator training and prediction cheaper.

glibc serves every allocation above ``M_MMAP_THRESHOLD`` (at most 32 MiB) with
a fresh ``mmap`` and returns it to the kernel on ``free``. A ConvNet-128
activation for 256 images of 32x32 is 128 MiB, so every layer of every step
maps, page-faults (one fault per 4 KiB page) and unmaps its output again: on a
2-core machine ``ddaudit check`` spent 35 of 89 s in the kernel that way
(19 million minor page faults). :func:`keep_freed_memory` tells glibc to serve
large blocks from its heap and to keep freed memory for reuse, so the pages are
faulted in once.

Gradient matching (DC) differentiates through gradients that shrink towards
float32's subnormal range once the network fits the synthetic set; x86 CPUs
handle subnormal operands in microcode, dozens of times slower.
:func:`flush_denormals` rounds them to zero for the duration of a call: one DC
iteration (10 outer x 10 inner loops, IPC 10) took 115 s without it and 8.7 s
with it on the 2-core machine. Evaluator training showed no difference.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from contextlib import contextmanager
from typing import Iterator

import torch

# mallopt parameter numbers from glibc's <malloc.h>.
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

_applied = False


def keep_freed_memory() -> bool:
    """Make glibc reuse freed memory instead of returning it to the kernel.

    Sets ``M_MMAP_MAX`` to 0 (no per-allocation ``mmap``), a trim threshold
    of 2 GiB (freed heap memory is kept) and a 64 MiB top pad (the heap grows
    in large steps). The peak resident memory stays what the computation
    needs; it is simply not handed back between steps. Returns whether the
    settings were applied: False off Linux/glibc, where it does nothing.
    Idempotent.
    """
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    ok = mallopt(M_MMAP_MAX, 0) == 1
    ok = ok and mallopt(M_TRIM_THRESHOLD, 2**31 - 1) == 1
    ok = ok and mallopt(M_TOP_PAD, 64 * 2**20) == 1
    _applied = ok
    return ok


def denormals_flushed() -> bool:
    """Whether this thread rounds subnormal floats to zero (read off an arithmetic result)."""
    return float(torch.tensor([1e-39]) * 1.0) == 0.0


@contextmanager
def flush_denormals() -> Iterator[bool]:
    """Round subnormal floats to zero inside the block, then restore the caller's setting.

    Yields whether the CPU supports it (SSE3 on x86; elsewhere nothing changes).
    Values below 1.2e-38 become 0, so results can differ from an unflushed run in
    the last digits; the same seed still gives the same result.
    """
    before = denormals_flushed()
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported and not before:
            torch.set_flush_denormal(False)
