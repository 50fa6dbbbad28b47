"""``ddaudit demo``: distil vanilla and fair DM on embedded data and audit both."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ddaudit.cli._common import handle_errors, make_console, phase_progress

DEMO_HELP = """Show bias amplified by distillation, then removed - no download needed.

On the embedded Colored-MNIST preset (real MNIST digits, each class drawn 90% in
its own colour) distil a synthetic set with vanilla DM and with FairDD's
synchronized matching (sync), audit both with `ddaudit check`'s engine, print
them side by side and write both reports, both sets (DatasetCondensation
format) and two pictures to --out.

--preset cpu (default without a GPU) finishes in minutes on two cores;
--preset gpu uses the literature settings (DSA, 20,000 iterations, 20 x 1000-epoch evaluators).
"""


def register(app: typer.Typer) -> None:
    app.command("demo", help=DEMO_HELP)(handle_errors(demo))


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the reports, synthetic sets and pictures.")] = Path("ddaudit-demo"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help='Write {"vanilla": report, "fair": report} as JSON.')] = None,
    preset: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    dataset: Annotated[str, typer.Option(help="Embedded preset: cmnist-fg or cmnist-bg.")] = "cmnist-fg",
    bias_ratio: Annotated[float, typer.Option(help="Share of each class drawn in its own colour.")] = 0.9,
    ipc: Annotated[Optional[int], typer.Option(help="Images per class (override the preset).")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="DM iterations (override the preset).")] = None,
    num_eval: Annotated[Optional[int], typer.Option(help="Evaluators per audit (override the preset).")] = None,
    eval_epochs: Annotated[Optional[int], typer.Option(help="Evaluator epochs (override the preset).")] = None,
    seed: Annotated[int, typer.Option(help="Seed for distillation and audits.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files in --out and --json.")] = False,
) -> None:
    from ddaudit.auditing import resolve_device
    from ddaudit.errors import ConfigError
    from ddaudit.demo import demo_outputs, demo_settings, run_demo
    from ddaudit.report import check_writable, to_markdown, write_json, write_text

    console = make_console()
    device = resolve_device(device)
    settings = demo_settings(preset, device, ipc=ipc, iterations=iterations, num_eval=num_eval, eval_epochs=eval_epochs)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder")
    out.mkdir(parents=True, exist_ok=True)
    for path in [*demo_outputs(out, settings, dataset), *([json_out] if json_out else [])]:
        check_writable(path, force)
    console.print(
        f"ddaudit demo ({settings.name} preset on {device}): {dataset}, bias ratio {bias_ratio}, ipc {settings.ipc}, "
        f"{settings.iterations} DM iterations, {settings.num_eval} x {settings.eval_model} evaluators "
        f"({settings.protocol}, {settings.eval_epochs} epochs)"
    )
    started = time.perf_counter()
    with phase_progress(console) as progress:
        result = run_demo(
            settings, out_dir=out, dataset=dataset, bias_ratio=bias_ratio, seed=seed, device=device,
            force=force, progress=progress,
        )
    elapsed = time.perf_counter() - started
    vanilla, fair = result["vanilla"], result["fair"]
    console.print(side_by_side(vanilla, fair))
    paths = [write_json(out / f"{name}.json", result[name], force) for name in ("vanilla", "fair")]
    paths.append(write_text(out / "report.md", to_markdown(vanilla) + "\n" + to_markdown(fair), force))
    if json_out is not None:
        write_json(json_out, {"vanilla": vanilla, "fair": fair}, force)
        paths.append(json_out)
    for path in [*paths, *result["files"].values()]:
        console.print(f"wrote {path}")
    console.print(f"finished in {elapsed / 60:.1f} min")


def side_by_side(vanilla: dict, fair: dict) -> Table:
    """Accuracy, worst-group accuracy, DEO_M, DEO_A and amplification for both sets."""
    table = Table(title="vanilla DM vs fair DM (sync), audited on the group-balanced real test set", title_justify="left")
    table.add_column("metric (%)")
    table.add_column("vanilla DM", justify="right")
    table.add_column("fair DM (sync)", justify="right")
    table.add_column("change", justify="right")
    for key, label in (
        ("accuracy", "Accuracy"),
        ("worst_group_accuracy", "Worst-group accuracy"),
        ("deo_max", "DEO_M"),
        ("deo_avg", "DEO_A"),
        ("bias_amplification", "Bias amplification A->T"),
    ):
        v, f = vanilla["metrics"][key]["mean"], fair["metrics"][key]["mean"]
        change = "" if v is None or f is None else f"{100 * (f - v):+.2f}"
        table.add_row(label, _fmt(v, vanilla["metrics"][key]["std"]), _fmt(f, fair["metrics"][key]["std"]), change)
    for name, report in (("vanilla DM", vanilla), ("fair DM (sync)", fair)):
        amp = report.get("amplification", {}).get("deo_max")
        if amp and amp.get("difference") is not None:
            ratio = "n/a" if amp.get("ratio") is None else f"x{amp['ratio']:.2f}"
            table.caption = (table.caption + "; " if table.caption else "") + (
                f"{name}: DEO_M amplification vs {amp['reference'].replace('_', ' ')} {ratio} ({100 * amp['difference']:+.2f})"
            )
    return table


def _fmt(mean, std) -> str:
    if mean is None or mean != mean:
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * (std or 0):.2f}"
