"""The Markdown fragment of one `gpu_suite.sh` run, in benchmarks/RESULTS.md form.

Reads what the suite left in its folder (steps.tsv, environment.txt, each step's
JSON lines and the demo's and run's JSON files), writes gpu_results.md there,
prints it, and exits 1 when a step failed or timed out. A step without figures
says why (skipped, failed with the end of its log, or timed out).

    python benchmarks/gpu_suite_report.py OUT --mode gpu
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
from pathlib import Path

TITLES = {
    "engine": "(a) Evaluator engines: batched (`torch.func` vmap) against sequential",
    "reference": "(b) `ddaudit check` against DatasetCondensation's `evaluate_synset`",
    "hooks_dm": "(c) Fair DM step cost against vanilla DM",
    "hooks_dc": "(c) Fair DC step cost against vanilla DC",
    "demo": "(d) `ddaudit demo`, a timed slice of its preset (the GPU preset on a GPU)",
    "run": "(e) `ddaudit run` on DatasetCondensation's `main_DM.py`",
    "torchrun": "(f) `ddaudit check` under torchrun",
}


def read_steps(folder: Path) -> list[dict]:
    with open(folder / "steps.tsv", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def json_lines(path: Path) -> list[dict]:
    """The JSON objects a step printed, one a line; other lines are ignored."""
    if not path.is_file():
        return []
    found = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found


def log_tail(folder: Path, name: str, lines: int = 3) -> str:
    path = folder / f"{name}.log"
    text = path.read_text(errors="replace").strip().splitlines() if path.is_file() else []
    return " / ".join(line.strip() for line in text[-lines:]) or "(no output)"


def engine(rows: list[dict], folder: Path) -> list[str]:
    r = rows[-1]
    return [
        f"{r['evaluators']} x {r['model']} evaluators, {r['epochs']} epochs, IPC {r['ipc']}, augmentation {r['aug']}, "
        f"on {r['device']}.", "",
        "| engine | seconds |", "|---|---:|",
        f"| sequential (baseline) | {r['sequential_s']} |", f"| batched | {r['batched_s']} |", "",
        f"Speed-up **{r['speedup']}x**; both engines predicted the same class for "
        f"{r['prediction_agreement'] * 100:.1f} % of the {r['test_images']} test images.",
    ]


def reference(rows: list[dict], folder: Path) -> list[str]:
    out = ["| repeat | reference wall s | ddaudit wall s | ratio | reference mean acc | ddaudit mean acc |",
           "|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['repeat']} | {r['reference']['wall_s']} | {r['ddaudit']['wall_s']} | **{r['speedup']}x** | "
                   f"{r['reference']['mean_accuracy']} | {r['ddaudit']['mean_accuracy']} |")
    r = rows[-1]
    out += ["", f"{r['evaluators']} evaluator(s), `epoch_eval_train` {r['reference_epoch_eval_train']} "
            f"(ddaudit `--epochs {r['ddaudit_epochs']}`), IPC {r['ipc']}, {r['test_images']} test images, "
            f"device {r['device']}{' (' + r['gpu'] + ')' if r.get('gpu') else ''}, precision {r['precision']}, "
            f"compile {r['compile']}. ddaudit side: `{r['command']}`."]
    return out


def hooks(rows: list[dict], folder: Path) -> list[str]:
    r = rows[-1]
    labels = {
        "dm_vanilla": "DM vanilla (baseline)", "dm_sync_rescale": "DM sync, row rescaling",
        "dm_sync_loop": "DM sync, FairDD's per-group loop", "dc_vanilla": "DC vanilla (baseline)",
        "dc_sync": "DC sync, per-group real gradients",
    }
    ratio_of = {"dm_sync_rescale": "dm_sync_rescale_over_vanilla", "dm_sync_loop": "dm_sync_loop_over_vanilla",
                "dc_sync": "dc_sync_over_vanilla"}
    out = ["| step | seconds / iteration | ratio to vanilla |", "|---|---:|---:|"]
    for key, seconds in r["seconds_per_iteration"].items():
        ratio = r["ratios"].get(ratio_of.get(key, ""), 1.0)
        out.append(f"| {labels.get(key, key)} | {seconds} | {ratio:.2f} |")
    s = r["settings"]
    out += ["", f"{s['model']}, IPC {s['dc_ipc'] or s['ipc'] if 'dc_vanilla' in r['seconds_per_iteration'] else s['ipc']}, "
            f"{s['batch_real']} real images per class, DSA {'on' if s['dsa'] else 'off'}, on {r['device']}."]
    return out


def demo(rows: list[dict], folder: Path, seconds: str) -> list[str]:
    path = folder / "demo_reports.json"
    if not path.is_file():
        return ["The demo wrote no reports."]
    reports = json.loads(path.read_text())
    first = next(iter(reports.values()))
    s = first["demo"]["settings"]
    from ddaudit.demo import PRESETS

    full = PRESETS[s["name"]] if s["name"] in PRESETS else None
    of = f" (of the preset's {full.iterations:,})" if full is not None and full.iterations != s["iterations"] else ""
    out = [f"Preset `{s['name']}` with {s['iterations']} DM iterations{of}, "
           f"{s['num_eval']} x {s['eval_model']} evaluators x {s['eval_epochs']} epochs, IPC {s['ipc']}, "
           f"DSA {'on' if s['dsa'] else 'off'}, device {first['settings'].get('device')}: **{seconds} s** for the whole "
           "command (three distillations, the label-free step and three audits).", "",
           "| set | accuracy % | DEO_M | DEO_A |", "|---|---:|---:|---:|"]
    for name, report in reports.items():
        m = report["metrics"]
        out.append(f"| {name} | {m['accuracy']['mean'] * 100:.2f} | {m['deo_max']['mean'] * 100:.2f} | "
                   f"{m['deo_avg']['mean'] * 100:.2f} |")
    return out


def run(rows: list[dict], folder: Path) -> list[str]:
    path = folder / "run_summary.json"
    if not path.is_file():
        return ["`ddaudit run` wrote no summary."]
    summary = json.loads(path.read_text())
    written = sorted(p.name for p in (folder / "run" / "result").glob("res_*.pt"))
    return [f"Codebase {summary['codebase']}, mode {summary['mode']}, device {summary.get('device')}; "
            f"{summary['intercepted_calls']} loss calls intercepted over {summary['batches']} class batches "
            f"({summary['absent_group_batches']} with a group absent); patched: {', '.join(summary['patched'])}. "
            f"Set written: {', '.join(written) or 'none'}."]


def torchrun(rows: list[dict], folder: Path) -> list[str]:
    out = ["| launch | processes | device | ok | seconds | world size in report | metrics equal 1 process |",
           "|---|---:|---|---|---:|---:|---|"]
    notes = []
    for r in rows:
        how = "torchrun" if r["torchrun"] else "plain (baseline)"
        if r["ok"]:
            out.append(f"| {how} | {r['processes']} | {r['device']} | yes | {r['seconds']} | "
                       f"{r['world_size_in_report']} | {r['metrics_equal_baseline']} |")
        else:
            out.append(f"| {how} | {r['processes']} | {r['device']} | **no** (exit {r['returncode']}) | {r['seconds']} | | |")
            tail = [line for line in r["stderr_tail"].splitlines() if line.strip()][-2:]
            notes.append(f"- {r['processes']} process(es) under {how}: `{' / '.join(tail)[:400]}`")
    out += ["", "ddaudit starts a process group only for world size > 1: gloo carries its messages, and a rank whose "
            "LOCAL_RANK names a visible GPU also gets NCCL (`cpu:gloo,cuda:nccl`); with 2 processes on one GPU "
            "that is rank 0 only. World size 1 under torchrun starts no process group."]
    return out + ([""] + notes if notes else [])


RENDER = {"engine": engine, "reference": reference, "hooks_dm": hooks, "hooks_dc": hooks, "torchrun": torchrun, "run": run}


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def fragment(folder: Path, mode: str, dc_note: str) -> tuple[str, bool]:
    steps = read_steps(folder)
    environment = (folder / "environment.txt").read_text().strip().splitlines() if (folder / "environment.txt").is_file() else []
    date = next((line.split(": ", 1)[1] for line in environment if line.startswith("date: ")), "?")
    title = "GPU suite" if mode == "gpu" else "GPU suite, smoke run (CPU, tiny sizes: proves the suite runs, measures nothing)"
    out = [f"## {title} ({date})", "",
           f"`bash benchmarks/gpu_suite.sh{' --smoke' if mode == 'smoke' else ''}`; "
           f"CPU {cpu_name()}, {os.cpu_count()} cores.", ""]
    out += [f"    {line}" for line in environment if not line.startswith(("date: ", "mode: "))] + [""]
    if dc_note:
        out += [f"DatasetCondensation checkout: {dc_note} (tests/fixtures/codebases/datasetcondensation).", ""]
    out += ["| step | status | seconds | timeout s |", "|---|---|---:|---:|"]
    out += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['timeout']} |" for s in steps]
    bad = False
    for s in steps:
        name = s["step"]
        out += ["", f"### {TITLES.get(name, name)}", ""]
        if s["status"] == "skipped":
            out.append(f"Skipped: {s['command']}.")
            continue
        out += [f"`{s['command'].strip()}`", ""]
        rows = json_lines(folder / f"{name}.json")
        if s["status"] != "ok":
            bad = True
            what = f"timed out after {s['timeout']} s" if s["status"] == "timeout" else f"failed (exit {s['rc']})"
            out += [f"**{what}**: {log_tail(folder, name)}"]
        if name == "demo" and s["status"] == "ok":
            out += demo(rows, folder, s["seconds"])
        elif name in RENDER and (rows or name == "run") and (s["status"] == "ok" or name == "torchrun"):
            out += [""] if s["status"] != "ok" else []
            out += RENDER[name](rows, folder)
    return "\n".join(out) + "\n", bad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--mode", choices=["gpu", "smoke"], default="gpu")
    parser.add_argument("--dc-note", default="")
    args = parser.parse_args()
    text, bad = fragment(args.folder, args.mode, args.dc_note)
    (args.folder / "gpu_results.md").write_text(text)
    print(text)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
