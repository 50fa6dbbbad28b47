"""Time KDE weights for N embeddings (default 60,000 x 512-d, 10 classes) and measure peak memory.

The embeddings are synthetic but shaped like a biased surrogate's: unit-norm,
each class a dense cluster holding ``--aligned`` of its samples plus scattered
conflicting samples. For every chunk size the script times
:func:`ddaudit.mitigate.kde.kde_weights` (per-class leave-one-out densities,
the production path) and reports the peak extra memory: CUDA's
``max_memory_allocated`` on a GPU, the process's peak resident set (VmHWM, reset
before each run) on the CPU. ``--global-density`` also times one KDE over all N
samples (the N x N case the chunking exists for). One JSON line per run.

    python benchmarks/bench_kde.py --device cuda
    python benchmarks/bench_kde.py --device cpu --chunks 1024,4096 --threads 2

Recorded results
----------------
CPU: the project's build machine, 2 cores shared with other jobs (load average
3.5-7 during the runs, so times vary up to 6x between runs), ``--threads 2``,
torch 2.14.1, 2026-11-22. 60,000 x 512-d float32, 10 classes (6,000 per class).
Command: ``python benchmarks/bench_kde.py --device cpu --threads 2 --chunks 512,2048,8192``
(second run: ``--chunks 512,2048,4096,8192``; global: ``--chunks 4096 --global-density``)::

    mode       chunk   seconds (run 1 / run 2)   peak extra RSS MiB   N x N would be
    per class    512        18.8 / 64.8                206                13,733 MiB
    per class   2048         3.8 / 22.9                171-179
    per class   4096        17.4 / 32.5                188-218
    per class   8192        11.1 / 21.0                275-338
    global      4096       155.8                       375

Peak extra memory stays a few hundred MiB (copies of one class's rows, an N x D validity mask, a few
kernel blocks), against 13.7 GiB for one N x N matrix; conflicting/aligned mean weight
ratio on the synthetic embeddings: 6.9 per class (1.08 with one global density).

GPU: not measured yet.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
from pathlib import Path

import torch

from ddaudit.mitigate.kde import kde_weights


def synthetic_embeddings(n: int, dim: int, classes: int, aligned: float, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit-norm embeddings: per class a tight cluster (aligned share) and spread-out conflicting samples."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    is_aligned = torch.rand(n, generator=g) < aligned
    centers = torch.nn.functional.normalize(torch.randn(classes, dim, generator=g), dim=1)
    spread = torch.where(is_aligned, 0.02, 0.08)[:, None]
    x = centers[labels] + spread * torch.randn(n, dim, generator=g)
    return torch.nn.functional.normalize(x, dim=1), labels, is_aligned


def _reset_peak_rss() -> bool:
    """Reset VmHWM (Linux >= 4.0); False where the kernel does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _measure(fn, device: torch.device) -> tuple[float, float]:
    """(seconds, peak extra MiB) of one call of *fn*."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        return seconds, (torch.cuda.max_memory_allocated(device) - base) / 2**20
    reset = _reset_peak_rss()
    base = _rss_kib("VmRSS")
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    peak = _rss_kib("VmHWM") if reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return seconds, (peak - base) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=60000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--aligned", type=float, default=0.95)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--chunks", default="512,2048,8192", help="comma-separated chunk sizes")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--global-density", action="store_true", help="also one KDE over all N samples")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    dtype = getattr(torch, args.dtype)
    x, y, aligned = synthetic_embeddings(args.n, args.dim, args.classes, args.aligned, args.seed)
    x, y = x.to(device=device, dtype=dtype), y.to(device)
    modes = [("per_class", True)] + ([("global", False)] if args.global_density else [])
    if device.type == "cuda":
        kde_weights(x[:1000], y[:1000], chunk_size=256)
        torch.cuda.synchronize(device)

    for chunk in [int(c) for c in args.chunks.split(",")]:
        for mode, per_class in modes:
            for repeat in range(args.repeat):
                result: dict = {}

                def run() -> None:
                    result["w"] = kde_weights(x, y, per_class=per_class, chunk_size=chunk,
                                              normalize="class" if per_class else "global")

                seconds, peak_mib = _measure(run, device)
                w = result["w"].cpu()
                print(json.dumps({
                    "bench": "kde_weights", "mode": mode, "n": args.n, "dim": args.dim, "classes": args.classes,
                    "chunk": chunk, "dtype": args.dtype, "repeat": repeat, "seconds": round(seconds, 3),
                    "peak_extra_mib": round(peak_mib, 1),
                    "block_mib": round(chunk * chunk * x.element_size() / 2**20, 1),
                    "n_squared_mib": round(args.n**2 * x.element_size() / 2**20, 1),
                    "conflicting_over_aligned": round(float(w[~aligned].mean() / w[aligned].mean()), 2),
                    "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
                    "threads": torch.get_num_threads(), "torch": torch.__version__,
                }), flush=True)


if __name__ == "__main__":
    main()
