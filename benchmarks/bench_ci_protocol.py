"""Does the CPU-runner protocol (``--protocol ci``) reach the same gate verdict as the full ``dsa`` protocol?

Two steps, so that each fits a short slot on a shared machine:

``make``  distils sets on the embedded cmnist-fg preset with ``ddaudit.distill``
          at the demo's CPU settings (ConvNetW32, 300 DM iterations, lr_img 20,
          64 real images per class, no DSA): vanilla DM, FairDD sync and, with
          ``--weights FILE`` (a ``ddaudit weights`` file), label-free KDE-weighted
          DM; with ``--label-free``, synchronized DM on pseudo-groups found without
          colour labels (``ddaudit.mitigate.label_free``, the demo's third set);
          for every IPC in ``--ipcs``.
``audit`` runs ``ddaudit check SET --real cmnist-fg --protocol P --num-eval N
          --no-reference --max-deo-max 0.3`` for each set and protocol ``P:N`` asked
          for (``--real cmnist-bg`` for a file whose name says cmnist-bg) and appends one JSON line per audit (verdict, DEO_M, accuracy,
          seconds, command) to ``--out``. Sets and protocols already in the
          file are skipped, so the step can be resumed piece by piece.

    python benchmarks/bench_ci_protocol.py make --folder /tmp/ci-sets --ipcs 10 50 --label-free
    python benchmarks/bench_ci_protocol.py audit --folder /tmp/ci-sets --protocols ci:5 dsa:3 --out ci.jsonl
    python benchmarks/bench_ci_protocol.py table --out ci.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

#: variant -> (matching mode, groups matched: the true colours or label-free pseudo-groups)
VARIANTS = {"vanilla": ("none", "true"), "sync": ("sync", "true"), "kde": ("weights", "true"),
            "labelfree": ("sync", "pseudo")}


def make(folder: Path, ipcs: list[int], weights_file: Path | None, label_free: bool, seed: int) -> None:
    from ddaudit.data import GroupTensors, load_real
    from ddaudit.distill import distill_dm, save_dc_format

    torch.set_num_threads(2)
    real = load_real("cmnist-fg")
    weights = None
    if weights_file is not None:
        from ddaudit.mitigate.kde import load_weights

        weights = load_weights(weights_file)["weights"]
    pseudo = None
    if label_free:
        from ddaudit.mitigate.without_labels import label_free as find_label_free

        pseudo = GroupTensors(real.train.x, real.train.y,
                              find_label_free((real.train.x, real.train.y), num_classes=real.num_classes).groups)
    folder.mkdir(parents=True, exist_ok=True)
    for ipc in ipcs:
        for variant, (mode, groups) in VARIANTS.items():
            path = folder / f"res_DM-{variant}_cmnist-fg_ConvNetW32_{ipc}ipc.pt"
            if path.exists() or (mode == "weights" and weights is None) or (groups == "pseudo" and pseudo is None):
                continue
            start = time.perf_counter()
            result = distill_dm(
                pseudo if groups == "pseudo" else real.train, num_classes=real.num_classes, ipc=ipc,
                iterations=300, mode=mode,
                weights=weights if mode == "weights" else None, model="ConvNetW32", lr_img=20.0,
                batch_real=64, dsa=False, seed=seed, device="cpu",
            )
            save_dc_format(path, result.images, result.labels, force=False)
            print(json.dumps({"made": path.name, "seconds": round(time.perf_counter() - start, 1)}), flush=True)


def parse_protocol(spec: str, default_evaluators: int) -> tuple[str, int]:
    """``NAME`` or ``NAME:EVALUATORS`` (e.g. ``ci:5``) -> (protocol name, evaluator count)."""
    name, _, count = spec.partition(":")
    return name, int(count) if count else default_evaluators


def audit(folder: Path, protocols: list[str], out: Path, num_eval: int, only: list[str] | None) -> None:
    done = set()
    if out.exists():
        done = {(row["set"], row["protocol"]) for row in map(json.loads, out.read_text().splitlines())}
    ddaudit = str(Path(sys.executable).parent / "ddaudit")
    for path in sorted(folder.glob("res_*.pt")):
        if only and not any(name in path.name for name in only):
            continue
        for spec in protocols:
            protocol, evaluators = parse_protocol(spec, num_eval)
            label = f"{protocol}:{evaluators}"
            if (path.name, label) in done or (evaluators == num_eval and (path.name, protocol) in done):
                continue
            report_path = folder / f"{path.stem}.{protocol}-{evaluators}.json"
            preset = "cmnist-bg" if "cmnist-bg" in path.name else "cmnist-fg"
            command = [ddaudit, "check", str(path), "--real", preset, "--protocol", protocol,
                       "--num-eval", str(evaluators), "--no-reference", "--max-deo-max", "0.3",
                       "--json", str(report_path), "--force"]
            start = time.perf_counter()
            proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "CI": "1"})
            seconds = time.perf_counter() - start
            if proc.returncode not in (0, 1, 3):
                sys.exit(proc.stderr[-3000:])
            report = json.loads(report_path.read_text())
            deo = report["metrics"]["deo_max"]
            row = {
                "set": path.name, "protocol": label, "exit_code": proc.returncode, "status": report["status"],
                "deo_max": deo["mean"], "deo_max_interval": deo.get("interval"),
                "accuracy": report["metrics"]["accuracy"]["mean"],
                "precision": report["settings"].get("precision"), "seconds": round(seconds, 1),
                "command": " ".join(["ddaudit", *command[1:-3]]),
            }
            with out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


def table(out: Path, reference: str) -> None:
    """One row per set: each protocol's verdict, and whether it agrees with *reference*'s."""
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    by_set: dict[str, dict[str, dict]] = {}
    for row in rows:
        label = row["protocol"] if ":" in row["protocol"] else f"{row['protocol']}:3"  # rows written before labels
        by_set.setdefault(row["set"], {})[label] = row
    labels = sorted({label for entries in by_set.values() for label in entries}, key=lambda l: (l == reference, l))
    others = [label for label in labels if label != reference]
    print("| set | " + " | ".join(f"{label} verdict (DEO_M, acc., s)" for label in labels)
          + "".join(f" | {label} same verdict | {label} same CI job result" for label in others) + " |")
    print("|---" * (1 + len(labels) + 2 * len(others)) + "|")
    for name, entries in sorted(by_set.items()):
        cells = []
        for label in labels:
            row = entries.get(label)
            cells.append("-" if row is None else
                         f"{row['status']} ({100 * row['deo_max']:.1f}, {100 * row['accuracy']:.1f}, {row['seconds']:.0f})")
        for label in others:
            if label in entries and reference in entries:
                mine, theirs = entries[label], entries[reference]
                cells.append("yes" if mine["status"] == theirs["status"] else "NO")
                # A CI job passes only on exit 0: fail (1) and inconclusive (3) both stop it.
                cells.append("yes" if (mine["exit_code"] == 0) == (theirs["exit_code"] == 0) else "NO")
            else:
                cells += ["-", "-"]
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["make", "audit", "table"])
    parser.add_argument("--folder", type=Path, default=Path("ci-sets"))
    parser.add_argument("--ipcs", type=int, nargs="+", default=[10, 50])
    parser.add_argument("--weights", type=Path, help="a `ddaudit weights` file: also make the label-free KDE set")
    parser.add_argument("--label-free", action="store_true",
                        help="also make sync DM on pseudo-groups found without colour labels")
    parser.add_argument("--protocols", nargs="+", default=["ci:5", "dsa:3"],
                        help="NAME or NAME:EVALUATORS; default: the CI profile (check's 5 evaluators) and dsa with 3")
    parser.add_argument("--num-eval", type=int, default=3, help="evaluators for a protocol given without :N")
    parser.add_argument("--reference", default="dsa:3", help="the protocol whose verdict the others are compared with")
    parser.add_argument("--only", nargs="+", help="audit only sets whose file name contains one of these")
    parser.add_argument("--out", type=Path, default=Path("ci-protocol.jsonl"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.step == "make":
        make(args.folder, args.ipcs, args.weights, args.label_free, args.seed)
    elif args.step == "audit":
        audit(args.folder, args.protocols, args.out, args.num_eval, args.only)
    else:
        table(args.out, args.reference)


if __name__ == "__main__":
    main()
