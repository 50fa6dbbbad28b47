"""Time the sequential and the batched evaluator engines on the same data, in one process.

Trains E evaluators on a random synthetic set (10 classes x ipc images,
3x32x32 by default) with each engine and prints one JSON line: device, torch
version, settings, seconds per engine, the speed-up ratio, and how many test
predictions the two engines agree on.

    python benchmarks/bench_engine.py --device cuda --evaluators 20 --epochs 1000 --ipc 50 --aug dsa
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import time

import torch

from ddaudit.evaluate import get_protocol, train_evaluators


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _time_engine(engine: str, x, y, test_x, protocol, seeds, device, max_batched) -> tuple[float, torch.Tensor]:
    _synchronize(device)
    start = time.perf_counter()
    ensemble = train_evaluators(
        x, y, protocol=protocol, seeds=seeds, num_classes=10, device=device, engine=engine, max_batched=max_batched
    )
    predictions = ensemble.predict(test_x)
    _synchronize(device)
    return time.perf_counter() - start, predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--evaluators", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--aug", choices=["none", "dsa"], default="none")
    parser.add_argument("--model", default="ConvNet")
    parser.add_argument("--size", type=int, default=32, help="image height and width")
    parser.add_argument("--test-images", type=int, default=1000)
    parser.add_argument("--max-batched", type=int, default=32)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(10 * args.ipc, 3, args.size, args.size, generator=generator)
    y = torch.arange(10).repeat_interleave(args.ipc)
    test_x = torch.randn(args.test_images, 3, args.size, args.size, generator=generator)
    protocol = get_protocol("dc", model=args.model, epochs=args.epochs, aug=args.aug)
    seeds = list(range(args.evaluators))

    warm_up = get_protocol("quick", model=args.model, epochs=1)
    for engine in ("sequential", "batched"):
        _time_engine(engine, x[:10], y[:10], test_x[:10], warm_up, seeds[:2], device, 2)
    sequential_s, sequential_pred = _time_engine("sequential", x, y, test_x, protocol, seeds, device, args.max_batched)
    batched_s, batched_pred = _time_engine("batched", x, y, test_x, protocol, seeds, device, args.max_batched)

    result = {
        "bench": "engine",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "model": args.model,
        "evaluators": args.evaluators,
        "epochs": args.epochs,
        "ipc": args.ipc,
        "aug": args.aug,
        "test_images": args.test_images,
        "sequential_s": round(sequential_s, 3),
        "batched_s": round(batched_s, 3),
        "speedup": round(sequential_s / batched_s, 3),
        "prediction_agreement": float((sequential_pred == batched_pred).float().mean()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
