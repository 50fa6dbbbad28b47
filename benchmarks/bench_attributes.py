"""Two protected attributes at once: vanilla DM, sync on one attribute, sync on their intersection.

On the embedded two-bias preset ``cmnist-fgbg`` (stroke colour and background colour, each
aligned with the class at its own ratio), each variant distils one set with
:func:`ddaudit.distill.distill_dm` at the demo's CPU settings (IPC 10, 300 iterations,
ConvNetW32, batch_real 64, lr_img 20, no DSA, group-balanced batches and initialisation)
and audits it like the demo (dc protocol, ConvNetW32, 200 epochs, 3 evaluators). It prints
one JSON line per variant and then a Markdown table: accuracy, the worst (class,
intersection) cell, and DEO_M for each attribute and for the intersection (all in %).

    python benchmarks/bench_attributes.py                          # the demo's CPU settings
    python benchmarks/bench_attributes.py --iterations 5 --epochs 5 --num-eval 1 --n-train 500 --n-test 50
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone

import torch

#: (name, matching mode, attribute columns to be fair over: None = the intersection of both).
VARIANTS = {
    "vanilla": ("none", None),
    "sync-foreground": ("sync", 0),
    "sync-background": ("sync", 1),
    "sync-intersection": ("sync", None),
}


def measure(real, name: str, args) -> dict:
    from ddaudit.auditing import audit
    from ddaudit.distill import distill_dm
    from ddaudit.io import SyntheticSet

    mode, attribute = VARIANTS[name]
    fair = mode != "none"
    started = time.perf_counter()
    result = distill_dm(real.train, num_classes=real.num_classes, ipc=args.ipc, iterations=args.iterations, mode=mode,
                        attribute=attribute, model="ConvNetW32", lr_img=args.lr_img, batch_real=args.batch_real,
                        dsa=False, seed=args.seed, batches=args.batches if fair else "uniform",
                        init=args.init if fair else "real", device=args.device)
    distilled = time.perf_counter() - started
    syn = SyntheticSet(images=result.images, labels=result.labels, format="dc", path=name)
    report = audit(syn, real, protocol="dc", protocol_overrides={"model": "ConvNetW32", "epochs": args.epochs},
                   num_eval=args.num_eval, n_boot=args.n_boot, reference=False, device=args.device,
                   seed=args.seed).to_dict()
    views = report["attributes"]
    inter = views["intersection"]["metrics"]
    row = {
        "variant": name,
        "accuracy": 100 * report["metrics"]["accuracy"]["mean"],
        "worst_intersection": 100 * inter["worst_group_accuracy"]["mean"],
        **{f"deo_m_{attr}": 100 * view["metrics"]["deo_max"]["mean"] for attr, view in views["per_attribute"].items()},
        "deo_m_intersection": 100 * inter["deo_max"]["mean"],
        "deo_a_intersection": 100 * inter["deo_avg"]["mean"],
        "deo_m_intersection_interval": [100 * v for v in inter["deo_max"].get("interval") or []],
        "distill_s": round(distilled, 1),
        "fair_matching": result.meta.get("fair_matching"),
    }
    return row


def table(rows: list[dict], attributes: list[str]) -> str:
    header = ["variant", "accuracy", "worst intersection", *[f"DEO_M {a}" for a in attributes], "DEO_M intersection",
              "DEO_A intersection"]
    lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        cells = [row["variant"], row["accuracy"], row["worst_intersection"],
                 *[row[f"deo_m_{a}"] for a in attributes], row["deo_m_intersection"], row["deo_a_intersection"]]
        lines.append("| " + " | ".join(c if isinstance(c, str) else f"{c:.2f}" for c in cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["vanilla", "sync-foreground", "sync-intersection"],
                        choices=list(VARIANTS))
    parser.add_argument("--ipc", type=int, default=10)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--lr-img", type=float, default=20.0)
    parser.add_argument("--batch-real", type=int, default=64)
    parser.add_argument("--batches", default="balanced", choices=["balanced", "uniform"])
    parser.add_argument("--init", default="balanced", choices=["balanced", "real"])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--num-eval", type=int, default=3)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--bias-ratio", type=float, default=0.9, help="foreground: share of a class in its own colour")
    parser.add_argument("--bg-ratio", type=float, default=0.8, help="background: share of a class on its own colour")
    parser.add_argument("--n-train", type=int, default=None)
    parser.add_argument("--n-test", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from ddaudit.data import load_real

    real = load_real("cmnist-fgbg", bias_ratio=args.bias_ratio, bg_ratio=args.bg_ratio, n_train=args.n_train,
                     n_test=args.n_test)
    rows = []
    for name in args.variants:
        row = measure(real, name, args)
        row.update(device=args.device, threads=torch.get_num_threads(), torch=torch.__version__,
                   cpu=platform.processor() or platform.machine(),
                   date=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                   settings={k: v for k, v in vars(args).items() if k != "variants"})
        print(json.dumps(row), flush=True)
        rows.append(row)
    print()
    print(table(rows, real.attributes))


if __name__ == "__main__":
    main()
