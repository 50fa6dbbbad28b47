"""``ddaudit demo``: distil vanilla, fair and label-free fair DM on embedded data and audit all three."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from ddaudit.cli._common import handle_errors, with_threads, make_console, phase_progress

DEMO_HELP = """Show bias amplified by distillation, then removed - no download needed.

On the embedded Colored-MNIST preset (real MNIST digits, each class drawn 90% in
its own colour), or on your own group-labelled data with --real, distil three synthetic sets: vanilla DM, DM with FairDD's
synchronized matching (sync) on the true colours, and label-free sync DM on
pseudo-groups that a deliberately biased classifier finds from the class labels
alone (no colour labels). Audit all three with `ddaudit check`'s engine, print
them side by side and write the reports, the sets (DatasetCondensation format)
and two pictures to --out.

--preset cpu (default without a GPU) finishes in minutes on two cores;
--preset gpu uses the literature settings (DSA, 20,000 iterations, 20 x 1000-epoch evaluators).
"""


def register(app: typer.Typer) -> None:
    app.command("demo", help=DEMO_HELP)(handle_errors(with_threads(demo)))


def demo(
    out: Annotated[Path, typer.Option(help="Folder for the reports, synthetic sets and pictures.")] = Path("ddaudit-demo"),
    json_out: Annotated[Optional[Path], typer.Option("--json", help='Write {"vanilla": report, "fair": report, "label_free": report} as JSON.')] = None,
    preset: Annotated[str, typer.Option(help="auto, cpu or gpu.")] = "auto",
    dataset: Annotated[str, typer.Option("--real", "--dataset", "-r", help="Group-labelled real data with a training split: an embedded preset (cmnist-fg, cmnist-bg) or any --real spec `check` takes (PRESET:ROOT, tensors:TRAIN.pt,TEST.pt, folder:ROOT; see `ddaudit datasets`).")] = "cmnist-fg",
    bias_ratio: Annotated[Optional[float], typer.Option(help="Embedded/recipe presets: share of each class drawn in its own group (default: the preset's, 0.9 for cmnist).")] = None,
    real_option: Annotated[Optional[list[str]], typer.Option("--real-option", help="Extra dataset option KEY=VALUE (repeatable), e.g. n_train=2000.")] = None,
    ipc: Annotated[Optional[int], typer.Option(help="Images per class (override the preset).")] = None,
    iterations: Annotated[Optional[int], typer.Option(help="DM iterations (override the preset).")] = None,
    num_eval: Annotated[Optional[int], typer.Option(help="Evaluators per audit (override the preset).")] = None,
    eval_epochs: Annotated[Optional[int], typer.Option(help="Evaluator epochs (override the preset).")] = None,
    surrogate_epochs: Annotated[Optional[int], typer.Option(help="Most epochs of the label-free set's biased classifier (override the preset).")] = None,
    batches: Annotated[Optional[str], typer.Option(help="Fair sets' real batches: balanced (evenly over each class's groups, the default) or uniform (FairDD as published).")] = None,
    init: Annotated[Optional[str], typer.Option(help="Fair sets' starting images: balanced (real images spread over each class's groups, the default), real or noise.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for distillation and audits.")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N.")] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files in --out and --json.")] = False,
) -> None:
    from ddaudit.cli._common import parse_key_values
    from ddaudit.demo import demo_bias_ratio, demo_outputs, demo_settings, run_demo
    from ddaudit.devices import resolve_device
    from ddaudit.preflight import check_counts, check_fraction, check_output_folder, check_outputs

    console = make_console()
    check_counts({"--ipc": ipc, "--iterations": iterations, "--num-eval": num_eval, "--eval-epochs": eval_epochs,
                  "--surrogate-epochs": surrogate_epochs})
    if bias_ratio is not None:
        check_fraction(bias_ratio, "--bias-ratio")
    options = parse_key_values(real_option, "--real-option")
    bias_ratio = demo_bias_ratio(dataset, bias_ratio, options)
    device = resolve_device(device)
    settings = demo_settings(preset, device, ipc=ipc, iterations=iterations, num_eval=num_eval, eval_epochs=eval_epochs,
                             surrogate_epochs=surrogate_epochs, batches=batches, init=init)
    check_output_folder(out, "--out", create=True)
    check_outputs({**{f"--out file {path.name}": path for path in demo_outputs(out, settings, dataset)},
                   "--json": json_out}, force=force)
    console.print(
        f"ddaudit demo ({settings.name} preset on {device}): {dataset}"
        f"{f', bias ratio {bias_ratio}' if bias_ratio is not None else ''}, ipc {settings.ipc}, "
        f"{settings.iterations} DM iterations, {settings.num_eval} x {settings.eval_model} evaluators "
        f"({settings.protocol}, {settings.eval_epochs} epochs)"
    )
    started = time.perf_counter()
    with phase_progress(console) as progress:
        result = run_demo(
            settings, out_dir=out, dataset=dataset, bias_ratio=bias_ratio, real_options=options, seed=seed,
            device=device, force=force, progress=progress,
        )
    elapsed = time.perf_counter() - started
    _show_and_write(result, out=out, json_out=json_out, force=force, console=console)
    console.print(f"finished in {elapsed / 60:.1f} min")


def _show_and_write(result: dict, *, out: Path, json_out: Path | None, force: bool, console) -> None:
    """The side-by-side table and the label-free recovery on screen; each report as JSON and all as Markdown."""
    from ddaudit.demo import VARIANTS
    from ddaudit.report import to_markdown, write_json, write_text

    reports = {name: result[name] for name, _, _ in VARIANTS}
    console.print(side_by_side(reports))
    recovery = reports["label_free"]["demo"]["label_free"]["recovery"]
    console.print(
        f"label-free pseudo-groups: adjusted Rand index {recovery['ari']:.3f} against the true colours "
        f"(KDE weights: AUC {recovery['auc']:.3f}); no colour label was used to find them"
    )
    paths = [write_json(out / f"{name}.json", report, force) for name, report in reports.items()]
    paths.append(write_text(out / "report.md", "\n".join(to_markdown(r) for r in reports.values()), force))
    if json_out is not None:
        write_json(json_out, reports, force)
        paths.append(json_out)
    for path in [*paths, *result["files"].values()]:
        console.print(f"wrote {path}")


def side_by_side(reports: dict[str, dict]) -> Table:
    """Accuracy, worst-group accuracy, DEO_M, DEO_A and amplification for every set, with changes from vanilla."""
    from ddaudit.demo import TITLES

    names = list(reports)
    table = Table(
        title="vanilla vs fair DM (true colours) vs label-free fair DM (pseudo-groups), on the group-balanced real test set",
        title_justify="left",
    )
    table.add_column("metric (%)")
    for name in names:
        table.add_column(TITLES.get(name, name), justify="right")
    for key, label in (
        ("accuracy", "Accuracy"),
        ("worst_group_accuracy", "Worst-group accuracy"),
        ("deo_max", "DEO_M"),
        ("deo_avg", "DEO_A"),
        ("bias_amplification", "Bias amplification A->T"),
    ):
        base = reports[names[0]]["metrics"][key]["mean"]
        cells = []
        for i, name in enumerate(names):
            metric = reports[name]["metrics"][key]
            text = _fmt(metric["mean"], metric["std"])
            if i and base is not None and metric["mean"] is not None:
                text += f" ({100 * (metric['mean'] - base):+.2f})"
            cells.append(text)
        table.add_row(label, *cells)
    for name, report in reports.items():
        amp = report.get("amplification", {}).get("deo_max")
        if amp and amp.get("difference") is not None:
            ratio = "n/a" if amp.get("ratio") is None else f"x{amp['ratio']:.2f}"
            table.caption = (table.caption + "; " if table.caption else "") + (
                f"{TITLES.get(name, name)}: DEO_M amplification vs {amp['reference'].replace('_', ' ')} {ratio} "
                f"({100 * amp['difference']:+.2f})"
            )
    return table


def _fmt(mean, std) -> str:
    if mean is None or mean != mean:
        return "n/a"
    return f"{100 * mean:.2f} ± {100 * (std or 0):.2f}"
