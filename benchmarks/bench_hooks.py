"""Cost of fairness in the distillation loop: fair step time over the vanilla step time.

Times DM iterations with ``mode="none"`` (vanilla), ``sync`` through the
row-rescaling identity (one loss call per class) and ``sync`` as FairDD
implements it (one loss call per group, ``strategy="loop"``), and DC iterations
vanilla vs ``sync`` (per-group real gradients), all in one process on the same
data, and prints one JSON line with seconds per iteration and the ratios.

    python benchmarks/bench_hooks.py --device cuda --model ConvNet --iterations 20
    python benchmarks/bench_hooks.py --device cpu --model ConvNetW32 --iterations 3 --batch-real 64
    python benchmarks/bench_hooks.py --device cpu --skip-dc --iterations 1 --real-option n_train=300  # a smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import torch

from ddaudit.cli._common import parse_key_values
from ddaudit.data import load_real
from ddaudit.distill import distill_dc, distill_dm


def seconds_per_iteration(run, iterations: int, device: str) -> float:
    run(1)  # warm-up: allocator, cuDNN autotuning, lazy imports
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    run(iterations)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="ConvNet")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--dc-iterations", type=int, default=2)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--dc-ipc", type=int, default=None, help="images per class for DC (default --ipc; DC's loops grow with it)")
    parser.add_argument("--batch-real", type=int, default=256)
    parser.add_argument("--dsa", action="store_true", help="DSA augmentation in both methods (DM's default)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-dc", action="store_true")
    parser.add_argument("--skip-dm", action="store_true")
    parser.add_argument("--real-option", action="append", default=[], metavar="KEY=VALUE",
                        help="cmnist-fg option, e.g. n_train=300 (smoke runs)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    real = load_real("cmnist-fg", **parse_key_values(args.real_option, "--real-option"))
    common = dict(num_classes=real.num_classes, ipc=args.ipc, model=args.model, batch_real=args.batch_real,
                  dsa=args.dsa, seed=0, device=args.device)

    def dm(mode: str, strategy: str = "auto"):
        return lambda its: distill_dm(real.train, iterations=its, mode=mode, strategy=strategy, **common)

    def dc(mode: str):
        dc_common = {**common, "ipc": args.dc_ipc or args.ipc}
        return lambda its: distill_dc(real.train, iterations=its, mode=mode, **dc_common)

    times, ratios = {}, {}
    if not args.skip_dm:
        times["dm_vanilla"] = seconds_per_iteration(dm("none"), args.iterations, args.device)
        times["dm_sync_rescale"] = seconds_per_iteration(dm("sync", "rescale"), args.iterations, args.device)
        times["dm_sync_loop"] = seconds_per_iteration(dm("sync", "loop"), args.iterations, args.device)
        ratios["dm_sync_rescale_over_vanilla"] = times["dm_sync_rescale"] / times["dm_vanilla"]
        ratios["dm_sync_loop_over_vanilla"] = times["dm_sync_loop"] / times["dm_vanilla"]
    if not args.skip_dc:
        times["dc_vanilla"] = seconds_per_iteration(dc("none"), args.dc_iterations, args.device)
        times["dc_sync"] = seconds_per_iteration(dc("sync"), args.dc_iterations, args.device)
    if "dc_sync" in times:
        ratios["dc_sync_over_vanilla"] = times["dc_sync"] / times["dc_vanilla"]
    device_name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    print(json.dumps({
        "bench": "hooks", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"), "device": device_name, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "settings": vars(args),
        "seconds_per_iteration": {k: round(v, 4) for k, v in times.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
    }))


if __name__ == "__main__":
    main()
