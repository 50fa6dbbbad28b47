"""DatasetCondensation's own ``evaluate_synset`` against ``ddaudit check``: same set, epochs, evaluators, test set.

Builds an IPC-``--ipc`` set of real cmnist-fg training digits (3x32x32, in
DatasetCondensation's ``res_*.pt`` format) and the preset's 10,000-image
group-balanced test set, then, in one run and in this order:

1. the reference: a fresh Python process that imports an UNMODIFIED
   DatasetCondensation checkout (``--dc-path``; never part of this
   repository) and calls its ``get_network('ConvNet', ...)`` and
   ``evaluate_synset`` once per evaluator, with DSA
   (``color_crop_cutout_flip_scale_rotate``), lr 0.01, batch 256 and a test
   loader of batch 256 over the same test images;
2. ``ddaudit check SET --real cmnist-fg --num-eval N --no-reference`` with the
   default ``dsa`` protocol (ConvNet, DSA) and everything else at its default
   (bootstrap intervals, fairlearn views, the report written as JSON).

``evaluate_synset`` with ``epoch_eval_train = E`` trains E + 1 passes over the
set, so ddaudit gets ``--epochs E+1``: both train the same number of passes.
Each side is timed as the wall time of its whole process (imports, data,
training, test prediction); user and system CPU seconds come from the
kernel's accounting of the child. ``--cold-compile-cache`` gives ddaudit an
empty ``torch.compile`` cache, so the time includes compiling from scratch. One JSON line per repeat: both times, the
ratio reference / ddaudit, both mean accuracies and the system-time shares.

    git clone https://github.com/VICO-UoE/DatasetCondensation /tmp/DatasetCondensation
    python benchmarks/bench_vs_reference.py --dc-path /tmp/DatasetCondensation --epochs 30 --num-eval 2
    python benchmarks/bench_vs_reference.py --dc-path /tmp/DatasetCondensation --epochs 1000 --num-eval 1
    python benchmarks/bench_vs_reference.py --dc-path /tmp/DatasetCondensation --device cuda --epochs 300

``--device cuda`` puts both sides on the GPU (the reference's ``args.device``, ``check --device``);
``--real-option n_test=5`` shrinks the shared test set (smoke runs).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from ddaudit.cli._common import parse_key_values
from ddaudit.data import load_real

# Runs in its own interpreter with the checkout first on sys.path; imports nothing from ddaudit.
REFERENCE_DRIVER = r"""
import argparse, json, sys, time
import torch
checkout, data_path, epochs, evaluators, threads, device = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
torch.set_num_threads(threads)
sys.path.insert(0, checkout)
from utils import ParamDiffAug, evaluate_synset, get_network  # the checkout's own code, unmodified
data = torch.load(data_path, weights_only=True)
images, labels = data["train_x"], data["train_y"]
test = torch.utils.data.TensorDataset(data["test_x"], data["test_y"])
testloader = torch.utils.data.DataLoader(test, batch_size=256, shuffle=False, num_workers=0)  # as DC's get_dataset
args = argparse.Namespace(
    device=device, lr_net=0.01, epoch_eval_train=epochs, batch_train=256, dsa=True,
    dsa_strategy="color_crop_cutout_flip_scale_rotate", dsa_param=ParamDiffAug(), dc_aug_param=None,
)
accuracies = []
for it_eval in range(evaluators):
    net = get_network("ConvNet", images.shape[1], 10, tuple(images.shape[2:]))
    _, _, acc_test = evaluate_synset(it_eval, net, images, labels, testloader, args)
    accuracies.append(float(acc_test))
print("RESULT " + json.dumps({"accuracies": accuracies}))
"""


def build_inputs(folder: Path, ipc: int, seed: int, options: dict | None = None) -> tuple[Path, Path]:
    """The distilled stand-in (real digits, DC format) and one file with both sides' tensors."""
    real = load_real("cmnist-fg", **(options or {}))
    generator = torch.Generator().manual_seed(seed)
    rows = torch.cat([
        members[torch.randperm(len(members), generator=generator)[:ipc]]
        for members in (torch.nonzero(real.train.y == cls).flatten() for cls in range(real.num_classes))
    ])
    train_x, train_y = real.train.x[rows].clone(), real.train.y[rows].clone()
    set_path = folder / f"res_random_cmnist-fg_ConvNet_{ipc}ipc.pt"
    torch.save({"data": [[train_x, train_y]]}, set_path)
    tensors_path = folder / "reference-inputs.pt"
    torch.save({"train_x": train_x, "train_y": train_y, "test_x": real.test.x.clone(), "test_y": real.test.y.clone()},
               tensors_path)
    return set_path, tensors_path


def timed(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``command``; wall, user and system seconds of the child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    return proc, {"wall_s": round(wall, 1), "user_s": round(user, 1), "sys_s": round(system, 1),
                  "sys_share": round(system / wall, 3) if wall else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dc-path", type=Path, required=True, help="an unmodified DatasetCondensation checkout")
    parser.add_argument("--epochs", type=int, default=30, help="evaluate_synset's epoch_eval_train (E + 1 passes)")
    parser.add_argument("--num-eval", type=int, default=2)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="both sides' device: cpu or cuda")
    parser.add_argument("--real-option", action="append", default=[], metavar="KEY=VALUE",
                        help="cmnist-fg option for both sides, e.g. n_test=5 (smoke runs)")
    parser.add_argument("--check-args", default="", help="extra ddaudit check arguments, e.g. '--precision fp32'")
    parser.add_argument("--cold-compile-cache", action="store_true",
                        help="give ddaudit an empty torch.compile cache (TORCHINDUCTOR_CACHE_DIR) in every repeat")
    args = parser.parse_args()
    if not (args.dc_path / "utils.py").is_file():
        sys.exit(f"{args.dc_path} is not a DatasetCondensation checkout (no utils.py)")
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": str(args.threads)}
    script = Path(sys.executable).parent / "ddaudit"  # the console script, as a user runs it
    ddaudit = [str(script)] if script.is_file() else [sys.executable, "-m", "ddaudit"]  # not installed: the source tree
    with tempfile.TemporaryDirectory() as tmp:
        options = parse_key_values(args.real_option, "--real-option")
        set_path, tensors_path = build_inputs(Path(tmp), args.ipc, args.seed, options)
        report_path = Path(tmp) / "report.json"
        reference_cmd = [sys.executable, "-c", REFERENCE_DRIVER, str(args.dc_path.resolve()), str(tensors_path),
                         str(args.epochs), str(args.num_eval), str(args.threads), args.device]
        check_cmd = [*ddaudit, "check", str(set_path), "--real", "cmnist-fg", "--epochs", str(args.epochs + 1),
                     "--num-eval", str(args.num_eval), "--no-reference", "--seed", str(args.seed), "--device", args.device,
                     *[f"--real-option={pair}" for pair in args.real_option],
                     *args.check_args.split(), "--json", str(report_path), "--force"]
        for repeat in range(args.repeat):
            proc, ref_time = timed(reference_cmd, env)
            if proc.returncode:
                sys.exit(f"the reference failed:\n{proc.stderr[-3000:]}")
            ref_acc = json.loads(proc.stdout.split("RESULT ", 1)[1])["accuracies"]
            our_env = dict(env)
            if args.cold_compile_cache:
                our_env["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-", dir=tmp)
            proc, our_time = timed(check_cmd, our_env)
            if proc.returncode not in (0, 1, 3):
                sys.exit(f"ddaudit check failed:\n{proc.stderr[-3000:]}")
            report = json.loads(report_path.read_text())
            print(json.dumps({
                "bench": "vs_reference", "device": args.device,
                "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "threads": args.threads, "torch": torch.__version__,
                "repeat": repeat, "ipc": args.ipc, "evaluators": args.num_eval, "reference_epoch_eval_train": args.epochs,
                "ddaudit_epochs": args.epochs + 1, "test_images": report["real"]["test_size"],
                "precision": report["settings"].get("precision"), "compile": report["settings"].get("compile"),
                "compile_cache": "cold" if args.cold_compile_cache else "as found",
                "reference": {**ref_time, "mean_accuracy": round(sum(ref_acc) / len(ref_acc), 4)},
                "ddaudit": {**our_time, "mean_accuracy": round(report["metrics"]["accuracy"]["mean"], 4)},
                "speedup": round(ref_time["wall_s"] / our_time["wall_s"], 2),
                "command": " ".join(["ddaudit", *check_cmd[len(ddaudit):-3]]),
            }), flush=True)


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
