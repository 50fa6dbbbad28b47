"""The headline rows every view shows, computed once so views cannot disagree."""

from __future__ import annotations

HEADLINE = (
    ("accuracy", "Accuracy", "higher"),
    ("worst_group_accuracy", "Worst-group accuracy", "higher"),
    ("deo_max", "DEO_M", "lower"),
    ("deo_avg", "DEO_A", "lower"),
    ("accuracy_gap", "Group accuracy gap", "lower"),
    ("equalized_odds_difference", "Equalized-odds diff. (OvR, max)", "lower"),
    ("demographic_parity_difference", "Demographic-parity diff. (OvR, max)", "lower"),
    ("bias_amplification", "Bias amplification A->T", "lower"),
)


def pct(value) -> str:
    """Fractions are shown as percentages with two decimals, the field's convention."""
    return "n/a" if value is None or value != value else f"{100 * value:.2f}"


def headline_rows(report: dict) -> list[dict]:
    """One row per metric: distilled mean/std/CI, each reference, amplification."""
    refs = report.get("reference", {})
    rows = []
    for key, label, better in HEADLINE:
        metric = report.get("metrics", {}).get(key)
        if metric is None:
            continue
        ci = metric.get("ci") or [None, None]
        amp = report.get("amplification", {}).get(key, {})
        ratio = amp.get("ratio")
        rows.append({
            "key": key,
            "label": label,
            "better": better,
            "value": f"{pct(metric.get('mean'))} ± {pct(metric.get('std'))}",
            "ci": f"[{pct(ci[0])}, {pct(ci[1])}]",
            "references": {name: pct(ref["metrics"].get(key, {}).get("mean")) for name, ref in refs.items()},
            "amplification": (
                "" if not amp else
                f"x{ratio:.2f} / {100 * amp['difference']:+.2f}" if ratio is not None and amp.get("difference") is not None else
                f"- / {100 * amp['difference']:+.2f}" if amp.get("difference") is not None else "n/a"
            ),
        })
    return rows


def cell_matrix(report: dict) -> tuple[list[str], list[str], list[list[str]]]:
    """(class names, group names, formatted accuracy/count per class x group)."""
    real = report.get("real", {})
    classes = real.get("class_names") or []
    groups = real.get("group_names") or []
    grid = [["-" for _ in groups] for _ in classes]
    for cell in report.get("cells", []):
        c, g = cell["class"], cell["group"]
        if c < len(classes) and g < len(groups):
            acc = cell.get("accuracy")
            grid[c][g] = f"{pct(acc)} ({cell['count']})" if acc is not None else f"empty ({cell['count']})"
    return classes, groups, grid
