"""The composition probe against the full audit, and on sets of known composition.

``known``: on the embedded presets, a set whose every image is in its class's
majority group and a set balanced over the groups within each class, each probed
by the real CLI (``ddaudit probe --no-cache``: data loading and classifier
training included) with its wall time.

``make`` / ``audit`` / ``summary``: a panel of distilled sets (vanilla and FairDD
sync DM from :func:`ddaudit.distill.distill_dm` at small settings, optionally
KDE-weighted label-free DM, random real subsets and real subsets of chosen
composition; IPC 1, 10, 50; cmnist-fg and cmnist-bg). ``audit`` probes each set
and trains evaluators on it (:func:`ddaudit.audit`, a cheap ``quick`` protocol);
``summary`` prints the table and the Spearman correlation between the probe's
mean majority share (and mean majority weight) and the evaluators' DEO_M.
``reprobe`` refreshes the probe's figures of every audited set without
retraining evaluators (seconds; after a change to the probe). Each part skips the work already
saved in ``--work``, so the panel runs in pieces under the shared lock:

    flock /tmp/ddaudit-heavy.lock python benchmarks/bench_probe_panel.py known
    flock /tmp/ddaudit-heavy.lock python benchmarks/bench_probe_panel.py make --only fg-
    flock /tmp/ddaudit-heavy.lock python benchmarks/bench_probe_panel.py make --only bg-
    flock /tmp/ddaudit-heavy.lock python benchmarks/bench_probe_panel.py audit
    python benchmarks/bench_probe_panel.py reprobe
    python benchmarks/bench_probe_panel.py summary
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

DEFAULT_WORK = Path(tempfile.gettempdir()) / "ddaudit-probe-panel"

#: name -> (dataset, kind, ipc, option): kind "dm" (option: mode), "real" (option: share of the
#: class's majority group, None for a uniformly random subset), "balanced" (every group equally).
PANEL = {
    "fg-dm-vanilla-1": ("cmnist-fg", "dm", 1, "none"),
    "fg-dm-vanilla-10": ("cmnist-fg", "dm", 10, "none"),
    "fg-dm-sync-10": ("cmnist-fg", "dm", 10, "sync"),
    "fg-dm-kde-10": ("cmnist-fg", "dm", 10, "weights"),
    "fg-dm-vanilla-50": ("cmnist-fg", "dm", 50, "none"),
    "fg-dm-sync-50": ("cmnist-fg", "dm", 50, "sync"),
    "fg-random-1": ("cmnist-fg", "real", 1, None),
    "fg-random-10": ("cmnist-fg", "real", 10, None),
    "fg-random-50": ("cmnist-fg", "real", 50, None),
    "fg-mix50-10": ("cmnist-fg", "real", 10, 0.5),
    "fg-balanced-10": ("cmnist-fg", "balanced", 10, None),
    "fg-balanced-50": ("cmnist-fg", "balanced", 50, None),
    "bg-dm-vanilla-10": ("cmnist-bg", "dm", 10, "none"),
    "bg-dm-sync-10": ("cmnist-bg", "dm", 10, "sync"),
    "bg-dm-sync-50": ("cmnist-bg", "dm", 50, "sync"),
    "bg-random-10": ("cmnist-bg", "real", 10, None),
    "bg-mix30-10": ("cmnist-bg", "real", 10, 0.3),
    "bg-balanced-10": ("cmnist-bg", "balanced", 10, None),
}


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["known", "make", "audit", "reprobe", "summary"])
    parser.add_argument("--work", type=Path, default=DEFAULT_WORK, help="where sets and per-set results are kept")
    parser.add_argument("--only", default="", help="only panel sets whose name starts with this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bias-ratio", type=float, default=0.9)
    parser.add_argument("--iterations", type=int, default=300, help="DM iterations (the demo's CPU preset)")
    parser.add_argument("--lr-img", type=float, default=20.0)
    parser.add_argument("--distill-model", default="ConvNetW32")
    parser.add_argument("--eval-model", default="ConvNetW32")
    parser.add_argument("--eval-epochs", type=int, default=100)
    parser.add_argument("--num-eval", type=int, default=2)
    parser.add_argument("--n-test", type=int, default=300, help="test digits per colour for the audit")
    parser.add_argument("--surrogate-epochs", type=int, default=5, help="SupCon epochs for the label-free KDE set")
    parser.add_argument("--out", type=Path, default=None, help="summary: also write the rows as JSON here")
    return parser.parse_args()


def machine() -> dict:
    return {"device": "cpu", "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "date": datetime.date.today().isoformat()}


def pick_real(real, ipc: int, majority: float | None, balanced: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real training rows per class: random, balanced over groups, or a set share in the majority group."""
    generator = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for cls in range(real.num_classes):
        in_class = real.train.y == cls
        if not balanced and majority is None:
            members = torch.nonzero(in_class).flatten()
            rows = members[torch.randperm(len(members), generator=generator)[:ipc]]
        else:
            share = 1.0 / real.num_groups if balanced else majority
            n_major = round(share * ipc)
            others = [g for g in range(real.num_groups) if g != cls]
            wanted = [cls] * n_major + [others[i % len(others)] for i in range(ipc - n_major)]
            rows, used = [], {}
            for group in wanted:
                members = torch.nonzero(in_class & (real.train.a == group)).flatten()
                rows.append(int(members[used.get(group, 0) % len(members)]))
                used[group] = used.get(group, 0) + 1
            rows = torch.tensor(rows)
        xs.append(real.train.x[rows])
        ys.append(torch.full((len(rows),), cls))
    return torch.cat(xs), torch.cat(ys)


def kde_weights_for(real, args) -> torch.Tensor:
    from ddaudit.mitigate.kde import kde_weights
    from ddaudit.mitigate.surrogate import SurrogateSettings, surrogate_embeddings

    settings = SurrogateSettings(model="ConvNetW32", epochs=args.surrogate_epochs, seed=args.seed)
    embeddings = surrogate_embeddings(real.train.x, real.train.y, settings, num_classes=real.num_classes, device="cpu")
    return kde_weights(embeddings, real.train.y).cpu()


def make(args) -> None:
    from ddaudit.distill import distill_dm, save_dc_format

    args.work.mkdir(parents=True, exist_ok=True)
    reals: dict = {}
    for name, (dataset, kind, ipc, option) in PANEL.items():
        path = args.work / f"{name}.pt"
        if not name.startswith(args.only) or path.exists():
            continue
        real = reals.setdefault(dataset, load_real(dataset, bias_ratio=args.bias_ratio))
        start = time.perf_counter()
        if kind == "dm":
            weights = kde_weights_for(real, args) if option == "weights" else None
            result = distill_dm(real.train, num_classes=real.num_classes, ipc=ipc, iterations=args.iterations,
                                mode=option, weights=weights, model=args.distill_model, lr_img=args.lr_img,
                                batch_real=64, dsa=False, seed=args.seed)
            x, y = result.images.detach(), result.labels
        else:
            x, y = pick_real(real, ipc, option, kind == "balanced", args.seed)
        save_dc_format(path, x, y, force=True)
        print(json.dumps({"made": name, "seconds": round(time.perf_counter() - start, 1)}), flush=True)


def probe_fields(name: str, args, reals: dict) -> dict:
    """The probe's summaries of one panel set (cached classifier) and its seconds."""
    import ddaudit

    dataset = PANEL[name][0]
    real = reals.setdefault(dataset, load_real(dataset, bias_ratio=args.bias_ratio, n_test=args.n_test))
    start = time.perf_counter()
    comp = ddaudit.probe(args.work / f"{name}.pt", real, seed=args.seed, device="cpu",
                         cache_dir=args.work / "cache").composition
    return {
        "mean_majority_share": comp["mean_majority_share"], "max_majority_share": comp["max_majority_share"],
        "mean_soft_majority_share": comp.get("mean_soft_majority_share"),
        "mean_majority_weight": comp.get("mean_majority_weight"), "max_majority_weight": comp.get("max_majority_weight"),
        "mean_normalized_entropy": comp["mean_normalized_entropy"], "mean_js_real": comp["mean_js_real"],
        "classifier_accuracy": comp["classifier"]["accuracy"], "uncertain": comp["uncertain"]["count"],
        "probe_seconds": round(time.perf_counter() - start, 1),
    }


def audit_one(name: str, args, reals: dict) -> dict:
    import ddaudit

    dataset, kind, ipc, option = PANEL[name]
    real = reals.setdefault(dataset, load_real(dataset, bias_ratio=args.bias_ratio, n_test=args.n_test))
    path = args.work / f"{name}.pt"
    probed = probe_fields(name, args, reals)
    start = time.perf_counter()
    audited = ddaudit.audit(path, real, protocol="quick",
                            protocol_overrides={"model": args.eval_model, "epochs": args.eval_epochs},
                            num_eval=args.num_eval, seed=args.seed, device="cpu", reference=False, n_boot=200)
    metrics = audited.report["metrics"]
    return {
        "name": name, "dataset": dataset, "kind": kind, "ipc": ipc, "option": option, **probed,
        "deo_max": metrics["deo_max"]["mean"], "deo_avg": metrics["deo_avg"]["mean"],
        "accuracy": metrics["accuracy"]["mean"],
        "audit_seconds": round(time.perf_counter() - start, 1),
        "protocol": {"name": "quick", "model": args.eval_model, "epochs": args.eval_epochs, "num_eval": args.num_eval,
                     "n_test": args.n_test},
        "machine": machine(),
    }


def audit(args) -> None:
    reals: dict = {}
    for name in PANEL:
        out = args.work / f"{name}.result.json"
        if not name.startswith(args.only) or out.exists() or not (args.work / f"{name}.pt").exists():
            continue
        row = audit_one(name, args, reals)
        out.write_text(json.dumps(row, indent=1))
        print(json.dumps({k: row[k] for k in ("name", "mean_majority_share", "deo_max", "probe_seconds", "audit_seconds")}), flush=True)


def reprobe(args) -> None:
    reals: dict = {}
    for name in PANEL:
        out = args.work / f"{name}.result.json"
        if not name.startswith(args.only) or not out.exists():
            continue
        row = {**json.loads(out.read_text()), **probe_fields(name, args, reals), "machine": machine()}
        out.write_text(json.dumps(row, indent=1))
        print(json.dumps({k: row[k] for k in ("name", "mean_majority_share", "mean_majority_weight", "deo_max",
                                              "probe_seconds")}), flush=True)


def summary(args) -> None:
    from scipy.stats import spearmanr

    rows = [json.loads(p.read_text()) for p in sorted(args.work.glob("*.result.json"))]
    rows.sort(key=lambda r: list(PANEL).index(r["name"]) if r["name"] in PANEL else 999)
    print("| set | IPC | mean majority share | soft | max | mean majority weight | entropy | JS vs real | "
          "classifier acc. | DEO_M | DEO_A | accuracy | probe s | audit s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['name']} | {r['ipc']} | {r['mean_majority_share']:.3f} | {r['mean_soft_majority_share']:.3f} | "
              f"{r['max_majority_share']:.2f} | {r['mean_majority_weight']:.3f} | "
              f"{r['mean_normalized_entropy']:.3f} | {r['mean_js_real']:.3f} | {100 * r['classifier_accuracy']:.2f} | "
              f"{100 * r['deo_max']:.2f} | {100 * r['deo_avg']:.2f} | {100 * r['accuracy']:.2f} | "
              f"{r['probe_seconds']} | {r['audit_seconds']} |")
    share = [r["mean_majority_share"] for r in rows]
    result = {
        "sets": len(rows),
        "spearman_share_vs_deo_max": spearmanr(share, [r["deo_max"] for r in rows]).statistic,
        "spearman_share_vs_deo_avg": spearmanr(share, [r["deo_avg"] for r in rows]).statistic,
        "spearman_weight_vs_deo_max": spearmanr([r["mean_majority_weight"] for r in rows],
                                                [r["deo_max"] for r in rows]).statistic,
        "spearman_weight_vs_deo_avg": spearmanr([r["mean_majority_weight"] for r in rows],
                                                [r["deo_avg"] for r in rows]).statistic,
        "spearman_soft_share_vs_deo_max": spearmanr([r["mean_soft_majority_share"] for r in rows],
                                                    [r["deo_max"] for r in rows]).statistic,
        "spearman_entropy_vs_deo_max": spearmanr([r["mean_normalized_entropy"] for r in rows],
                                                 [r["deo_max"] for r in rows]).statistic,
        "probe_seconds_total": round(sum(r["probe_seconds"] for r in rows), 1),
        "audit_seconds_total": round(sum(r["audit_seconds"] for r in rows), 1),
    }
    print(json.dumps(result))
    if args.out is not None:
        args.out.write_text(json.dumps({"rows": rows, "summary": result}, indent=1))


def known(args) -> None:
    """Wall time of the CLI on an all-majority and a group-balanced set, classifier training included."""
    ddaudit = str(Path(sys.executable).parent / "ddaudit")
    with tempfile.TemporaryDirectory() as tmp:
        for dataset in ("cmnist-fg", "cmnist-bg"):
            real = load_real(dataset, bias_ratio=args.bias_ratio)
            for label, majority, balanced in (("all-majority", 1.0, False), ("balanced", None, True)):
                x, y = pick_real(real, 10, majority, balanced, args.seed)
                path = Path(tmp) / f"{dataset}-{label}.pt"
                torch.save({"data": [[x, y]]}, path)
                out = Path(tmp) / f"{dataset}-{label}.json"
                command = [ddaudit, "probe", str(path), "--real", dataset, "--no-cache", "--device", "cpu",
                           "--json", str(out), "--seed", str(args.seed)]
                start = time.perf_counter()
                proc = subprocess.run(command, capture_output=True, text=True,
                                      env={**os.environ, "CI": "1", "OMP_NUM_THREADS": str(args.threads)})
                seconds = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr)
                comp = json.loads(out.read_text())["composition"]
                print(json.dumps({
                    "dataset": dataset, "set": label, "ipc": 10, "seconds": round(seconds, 1),
                    "mean_majority_share": round(comp["mean_majority_share"], 4),
                    "max_majority_share": round(comp["max_majority_share"], 4),
                    "mean_majority_weight": round(comp["mean_majority_weight"], 4),
                    "classifier_accuracy": round(comp["classifier"]["accuracy"], 4),
"uncertain": comp["uncertain"]["count"],
                    "command": " ".join(["ddaudit", *command[1:2], *command[2:]]), **machine(),
                }), flush=True)


def main() -> None:
    args = parse()
    torch.set_num_threads(args.threads)
    {"known": known, "make": make, "audit": audit, "reprobe": reprobe, "summary": summary}[args.part](args)


if __name__ == "__main__":
    main()
