"""Wall time of a `ddaudit check` audit at IPC 10 on the embedded cmnist-fg preset.

Builds a 10-image-per-class set from real training digits (saved in
DatasetCondensation's format), runs the real CLI on it once per engine given,
and prints one JSON line per run with the device, threads, settings and seconds.
Extra arguments after ``--`` go to ``ddaudit check`` (e.g. ``--epochs 20``).

    python benchmarks/bench_check.py --engines sequential batched -- --protocol dsa --num-eval 5
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ddaudit.data import load_real


def build_set(folder: Path, ipc: int, seed: int) -> Path:
    real = load_real("cmnist-fg")
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for cls in range(real.num_classes):
        members = torch.nonzero(real.train.y == cls).flatten()
        rows.append(members[torch.randperm(len(members), generator=generator)[:ipc]])
    rows = torch.cat(rows)
    path = folder / f"res_random_cmnist-fg_ConvNet_{ipc}ipc.pt"
    torch.save({"data": [[real.train.x[rows].clone(), real.train.y[rows].clone()]]}, path)
    return path


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", nargs="+", default=["auto"])
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(own)
    ddaudit = str(Path(sys.executable).parent / "ddaudit")
    with tempfile.TemporaryDirectory() as tmp:
        path = build_set(Path(tmp), args.ipc, args.seed)
        for engine in args.engines:
            report_path = Path(tmp) / f"report-{engine}.json"
            command = [ddaudit, "check", str(path), "--real", "cmnist-fg", "--engine", engine, *extra,
                       "--json", str(report_path), "--force"]
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CI": "1"})
            seconds = time.perf_counter() - start
            if proc.returncode not in (0, 1, 3):
                sys.exit(proc.stderr)
            settings = json.loads(report_path.read_text())["settings"]
            device = settings["device"]
            print(json.dumps({
                "date": datetime.date.today().isoformat(),
                "device": torch.cuda.get_device_name(device) if device.startswith("cuda") else f"cpu ({platform.machine()})",
                "threads": torch.get_num_threads(), "protocol": settings["protocol"], "num_eval": settings["num_eval"],
                "cpu_count": os.cpu_count(), "torch": torch.__version__, "engine": engine,
                "command": " ".join(["ddaudit", *command[1:-3]]), "seconds": round(seconds, 1),
            }), flush=True)


if __name__ == "__main__":
    main()
