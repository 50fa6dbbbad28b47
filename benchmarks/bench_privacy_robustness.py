"""Membership inference and robustness of the demo's distilled sets, and what the two audits cost.

Runs ``ddaudit demo`` (CPU preset) unless ``--demo-dir`` already holds its sets,
then audits each set with the demo's evaluator settings twice, one run after the
other, each from a cold cache: a plain ``check`` (its defaults, probe included) and
``check --privacy --robustness``. Prints one JSON
line per set with both wall times, their ratio, MIA AUC / TPR at 1 % FPR
(overall, per group, for the distilled set and the random-subset reference) and
robust accuracy, worst-group accuracy and DEO_M per PGD budget. Extra
arguments after ``--`` go to both ``check`` runs. ``--full-reference`` adds one
more attacked run (of the first set) with ``--full-reference``: the full-data
model's MIA and PGD figures, which do not depend on the distilled set.

    python benchmarks/bench_privacy_robustness.py --demo-dir /tmp/demo --full-reference -- --threads 1
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

#: The demo's CPU evaluator settings (ddaudit.demo.PRESETS["cpu"]).
DEMO_CHECK = ["--protocol", "dc", "--model", "ConvNetW32", "--epochs", "200", "--num-eval", "3", "--n-boot", "500"]
#: The demo's file name prefix of each set (ddaudit.demo.set_path).
VARIANTS = {"vanilla": "res_DM_", "fair": "res_DM-FairDD_", "label_free": "res_DM-FairDD-pseudo_"}


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _run(command: list[str]) -> float:
    """Wall seconds of one command, from a cold cache (a fresh probe cache, as on a CI runner)."""
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        proc = subprocess.run(command, capture_output=True, text=True,
                              env={**os.environ, "CI": "1", "DDAUDIT_CACHE_DIR": cache})
        seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1, 3):
        sys.exit(f"{' '.join(command)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return seconds


def _summary(report: dict) -> dict:
    privacy, robust = report["privacy"], report["robustness"]

    def figures(entry: dict) -> dict:
        return {"auc": entry["auc"], "auc_interval": entry["auc_interval"], "tpr_1pct": entry["tpr_at_fpr_1pct"]}

    attacks = {name: figures(entry) for name, entry in privacy["attacks"].items()}
    per_group = {e["group"]: round(e["auc"], 4) for e in privacy["attacks"][privacy["gated_attack"]]["per_group"]}
    refs = {name: figures(entry) for name, entry in privacy["references"].items()}
    pgd = [{"budget_255": row["budget_255"], "accuracy": row["accuracy"],
            "worst_group_accuracy": row["worst_group_accuracy"], "deo_max": row["deo_max"]} for row in robust["pgd"]]
    ref_pgd = {name: [{"budget_255": row["budget_255"], "accuracy": row["accuracy"], "deo_max": row["deo_max"]}
                      for row in ref["pgd"]] for name, ref in robust["references"].items()}
    corruptions = {f"{row['corruption']}-s{row['severity']}": round(row["accuracy"], 4) for row in robust["corruptions"]}
    return {"clean_accuracy": report["metrics"]["accuracy"]["mean"], "members": privacy["members"],
            "non_members": privacy["non_members"], "attacks": attacks, "gated_attack": privacy["gated_attack"],
            "auc_per_group": per_group, "reference_attacks": refs, "pgd": pgd, "reference_pgd": ref_pgd,
            "corruptions": corruptions, "robustness_samples": robust["samples"]}


def main() -> None:
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demo-dir", type=Path, required=True)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--no-plain", action="store_true",
                        help="skip the plain check (figures only, no cost ratio)")
    parser.add_argument("--real", default="cmnist-fg", help="the embedded preset the demo distils and check audits on")
    parser.add_argument("--full-reference", action="store_true",
                        help="also audit the first set with --full-reference (a model trained on all 4,000 rows)")
    args = parser.parse_args(own)
    ddaudit = str(Path(sys.executable).parent / "ddaudit")
    if not any(args.demo_dir.glob("res_DM_*.pt")):
        _run([ddaudit, "demo", "--out", str(args.demo_dir), "--preset", "cpu", "--real", args.real, *extra])
    for variant in args.variants:
        path = next(args.demo_dir.glob(f"{VARIANTS[variant]}*.pt"))
        report = args.demo_dir / f"attacks-{variant}.json"
        base = [ddaudit, "check", str(path), "--real", args.real, *DEMO_CHECK, *extra]
        plain = None if args.no_plain else _run([*base, "--json", str(args.demo_dir / f"plain-{variant}.json"),
                                                  "--force"])
        attacked = _run([*base, "--privacy", "--robustness", "--json", str(report), "--force"])
        print(json.dumps({
            "benchmark": "privacy_robustness", "real": args.real, "set": path.name, "date": datetime.date.today().isoformat(),
            "cpu": _cpu(), "threads_flag": extra, "plain_s": plain and round(plain, 1), "with_attacks_s": round(attacked, 1),
            "ratio": plain and round(attacked / plain, 3), **_summary(json.loads(report.read_text())),
        }), flush=True)
    if args.full_reference:
        path = next(args.demo_dir.glob(f"{VARIANTS[args.variants[0]]}*.pt"))
        report = args.demo_dir / "attacks-full-reference.json"
        seconds = _run([ddaudit, "check", str(path), "--real", args.real, *DEMO_CHECK, *extra, "--privacy",
                        "--robustness", "--full-reference", "--json", str(report), "--force"])
        summary = _summary(json.loads(report.read_text()))
        print(json.dumps({
            "benchmark": "privacy_robustness_full_reference", "real": args.real, "set": path.name,
            "date": datetime.date.today().isoformat(), "cpu": _cpu(), "threads_flag": extra,
            "with_attacks_and_full_reference_s": round(seconds, 1),
            "reference_attacks": summary["reference_attacks"], "reference_pgd": summary["reference_pgd"],
        }), flush=True)


if __name__ == "__main__":
    main()
