"""Allocator settings: freed large blocks are reused instead of being page-faulted in again."""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from ddaudit.evaluate.runtime import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "on" else False
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    block = torch.empty(16 * 2**20)  # 64 MiB, above glibc's largest mmap threshold
    block.fill_(1.0)
    del block
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True).stdout
    applied, faults = out.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning exists on Linux only")
def test_freed_memory_is_reused_not_faulted_in_again():
    applied, kept = _faults("on")
    _, returned = _faults("off")
    assert applied == "True"
    pages = 16 * 2**20 * 4 // 4096  # one 64 MiB block in 4 KiB pages
    # Without the setting every block is a fresh mapping: 20 blocks fault about 20 x 16,384 pages.
    assert returned > 10 * pages
    # With it the pages of the first block are reused by the next 19.
    assert kept < 3 * pages


def test_keep_freed_memory_is_idempotent():
    from ddaudit.evaluate.runtime import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() == first
