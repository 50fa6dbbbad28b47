"""Views of the probe's ``composition`` section: rows for tables, rich and Markdown."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

COMPOSITION_HEADER = [
    "class", "images", "predicted majority", "share", "weight", "groups", "entropy", "JS vs real",
    "real majority", "real share", "unsure", "unknown", "identified", "residual",
]

#: Columns of names, aligned left; numbers align right.
LEFT = ("class", "predicted majority", "real majority", "identified")


def _num(value, digits: int = 2) -> str:
    return "n/a" if value is None or value != value else f"{value:.{digits}f}"


def _name(names: list, index) -> str:
    return str(names[index]) if isinstance(index, int) and 0 <= index < len(names) else ("-" if index is None else str(index))


def _identified(entry: dict) -> str:
    """yes / why not (older reports have no such field: n/a)."""
    status = entry.get("weight_status")
    return "n/a" if status is None else ("yes" if status == "identified" else f"no ({status.replace('_', ' ')})")


def _interval(value) -> str:
    return f" [{_num(value[0])}, {_num(value[1])}]" if isinstance(value, (list, tuple)) and len(value) == 2 else ""


def composition_rows(report: dict) -> list[list[str]]:
    """One row per class with synthetic images: what the set shows next to what the real class holds."""
    comp = report.get("composition") or {}
    real = report.get("real", {})
    classes, groups = real.get("class_names") or [], real.get("group_names") or []
    rows = []
    for entry in comp.get("classes", []):
        if not entry.get("images"):
            continue
        rows.append([
            _name(classes, entry["class"]),
            str(entry["images"]),
            _name(groups, entry["majority_group"]),
            _num(entry["majority_share"]),
            _num(entry.get("majority_weight")),
            f"{entry['groups_covered']}/{len(entry['counts'])}",
            _num(entry["normalized_entropy"]),
            _num(entry.get("js_real"), 3),
            _name(groups, entry.get("real_majority_group")),
            _num(entry.get("real_majority_share")),
            str(entry.get("uncertain", 0)),
            str(entry.get("unknown", 0)),
            _identified(entry),
            _num(entry.get("hull_residual")),
        ])
    return rows


def composition_summary(report: dict) -> str:
    """The probe in one sentence: summaries plus how far the classifier can be trusted."""
    comp = report.get("composition") or {}
    clf = comp.get("classifier") or {}
    unsure = (comp.get("uncertain") or {}).get("count", 0)
    total = sum(entry.get("images", 0) for entry in comp.get("classes", []))
    real_share = comp.get("real_mean_majority_share")
    level = comp.get("interval_level")
    method = (f"; intervals: {100 * level:g} % {comp['interval_method'].replace('_', ' ')}"
              if comp.get("interval_method") and level else "")
    unknown = (f"; {comp['unknown_images']} of {total} images unlike any real group (unknown, not in the shares)"
               if comp.get("unknown_images") is not None else "")
    excluded = comp.get("weight_excluded") or []
    left_out = f", {len(excluded)} class(es) left out as not identified" if excluded else ""
    return (
        f"mean majority share {_num(comp.get('mean_majority_share'))}{_interval(comp.get('mean_majority_share_interval'))} "
        f"(max {_num(comp.get('max_majority_share'))}; "
        f"real data {_num(real_share)}, uniform {_num(1 / max(1, len(groups_of(report))))}), "
        f"mean majority weight {_num(comp.get('mean_majority_weight'))}{_interval(comp.get('mean_majority_weight_interval'))} "
        f"(max {_num(comp.get('max_majority_weight'))}{left_out}), "
        f"normalised entropy {_num(comp.get('mean_normalized_entropy'))}, JS vs real {_num(comp.get('mean_js_real'), 3)}; "
        f"group classifier {_num(100 * clf['accuracy'] if clf.get('accuracy') is not None else None, 1)} % accurate "
        f"on the real test set{' (cached)' if clf.get('cached') else ''}; {unsure} of {total} images unsure"
        f"{unknown}{method}"
    )


def groups_of(report: dict) -> list:
    return (report.get("real") or {}).get("group_names") or []


def render_composition(report: dict, console: Console, *, show_warnings: bool = False) -> None:
    """The composition table on stderr (with the probe's own warnings when *show_warnings*)."""
    syn, real = report.get("synthetic", {}), report.get("real", {})
    title = f"composition of {syn.get('path')} (predicted groups) vs {real.get('name')} training data"
    table = Table(title=escape(title), title_justify="left")
    for i, name in enumerate(COMPOSITION_HEADER):
        table.add_column(name, justify="left" if COMPOSITION_HEADER[i] in LEFT else "right", no_wrap=True)
    for row in composition_rows(report):
        table.add_row(*(escape(cell) for cell in row))
    console.print(table)
    console.print(escape(composition_summary(report)), highlight=False, soft_wrap=True)
    if show_warnings:
        for warning in (report.get("composition") or {}).get("warnings", []):
            console.print(f"warning (probe): {warning}", markup=False, highlight=False, soft_wrap=True)


def composition_markdown(report: dict) -> list[str]:
    """A Markdown section (lines) for the composition, empty when the report has none."""
    if not report.get("composition"):
        return []
    lines = ["### Composition (group probe)", "", composition_summary(report), ""]
    lines.append("| " + " | ".join(COMPOSITION_HEADER) + " |")
    lines.append("|" + "|".join("---" if COMPOSITION_HEADER[i] in LEFT else "---:" for i in range(len(COMPOSITION_HEADER))) + "|")
    lines += ["| " + " | ".join(row) + " |" for row in composition_rows(report)]
    return lines
