"""Wall time of one `ddaudit check` run in 1 process and under torchrun with K processes.

Builds a random-real-digits set at IPC 10 on the embedded cmnist-fg preset (DatasetCondensation
format), then runs the real CLI once per process count: 1 is the plain `python -m ddaudit check`
(the baseline), K > 1 is `python -m torch.distributed.run --standalone --nproc_per_node=K -m
ddaudit check`. Every process gets OMP_NUM_THREADS=--threads. Prints one JSON line per run with
the device, threads, whole-command seconds, rank 0's training seconds (from its progress line),
and whether the report's metrics equal the baseline's. A launch that fails prints a line with
``"ok": false`` and the end of its stderr, and the next launch still runs (exit status 1 at the
end). ``--torchrun-one`` also launches one process under torchrun (world size 1). Extra
arguments after ``--`` go to ``ddaudit check``.

    python benchmarks/bench_torchrun.py --processes 1 2 --threads 1 -- --num-eval 4 --epochs 40
    python benchmarks/bench_torchrun.py --processes 1 2 4 8 --device cuda -- --num-eval 20 --protocol dsa
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ddaudit.data import load_real

DEFAULT_CHECK = ["--num-eval", "4", "--no-reference", "--protocol", "dsa", "--epochs", "40", "--n-boot", "200"]


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


def command_for(processes: int, torchrun: bool = False) -> list[str]:
    if processes == 1 and not torchrun:
        return [sys.executable, "-m", "ddaudit"]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}", "-m", "ddaudit"]


def launch(command: list[str], env: dict, cwd: str, timeout: float | None) -> subprocess.CompletedProcess:
    """Run one launch; past *timeout* its whole process group (torchrun and its workers) is killed."""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=cwd,
                          start_new_session=True) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            return subprocess.CompletedProcess(command, -9, out, f"{err}\nstopped after {timeout} s")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def training_seconds(stderr: str) -> float | None:
    """Rank 0's evaluator-training time, from the plain-mode progress line."""
    found = re.findall(r"training evaluators on the distilled set: done \(\d+ steps, (\d+) s\)", stderr)
    return float(found[-1]) if found else None


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2], help="process counts; 1 is the baseline")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--launch-timeout", type=float, default=None, help="seconds before a launch is stopped and recorded as failed")
    parser.add_argument("--torchrun-one", action="store_true", help="also run 1 process under torchrun, after the others")
    args = parser.parse_args(own)
    check_args = extra or DEFAULT_CHECK
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": str(args.threads)}
    baseline = None
    failed = False
    launches = [(p, p > 1) for p in args.processes] + ([(1, True)] if args.torchrun_one else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = build_set(Path(tmp), args.ipc, args.seed)
        for processes, torchrun in launches:
            report_path = Path(tmp) / f"report-{processes}-{int(torchrun)}.json"
            command = [*command_for(processes, torchrun), "check", str(path), "--real", "cmnist-fg", "--device", args.device,
                       "--seed", str(args.seed), *check_args, "--json", str(report_path), "--force"]
            start = time.perf_counter()
            proc = launch(command, env, tmp, args.launch_timeout)
            seconds = time.perf_counter() - start
            common = {"bench": "torchrun", "processes": processes, "torchrun": torchrun, "device": args.device,
                      "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
                      "seconds": round(seconds, 2), "command": " ".join(command[1:-3])}
            if proc.returncode not in (0, 1, 3) or not report_path.is_file():
                failed = True
                print(json.dumps({**common, "ok": False, "returncode": proc.returncode,
                                  "stderr_tail": proc.stderr[-1500:]}), flush=True)
                continue
            report = json.loads(report_path.read_text())
            if baseline is None:
                baseline = report
            print(json.dumps({
                **common, "ok": True,
                "date": datetime.date.today().isoformat(),
                "cpu": platform.processor() or platform.machine(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "threads_per_process": args.threads,
                "world_size_in_report": report["settings"].get("world_size"),
                "check_args": check_args,
                "rank0_training_seconds": training_seconds(proc.stderr),
                "accuracy": report["metrics"]["accuracy"]["mean"],
                "metrics_equal_baseline": report["metrics"] == baseline["metrics"],
            }), flush=True)
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
