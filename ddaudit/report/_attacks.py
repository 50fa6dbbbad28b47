"""Views of the ``privacy`` and ``robustness`` sections: the same tables for rich, Markdown and HTML."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ddaudit.report._markup import _e, _section, _table

PRIVACY_HEADER = ["target", "attack", "members", "non-members", "AUC [CI]", "TPR @ 1% FPR [CI]", "TPR @ 0.1% FPR [CI]"]
SLICE_HEADER = ["slice", "members", "non-members", "AUC [CI]", "TPR @ 1% FPR [CI]"]
REFERENCE_NAMES = {"random_subset": "ref: random subset", "full": "ref: full data"}


def _pct(value) -> str:
    return "n/a" if value is None or value != value else f"{100 * value:.1f}"


def _with_interval(value, interval, percent: bool = True) -> str:
    show = _pct if percent else (lambda v: "n/a" if v is None or v != v else f"{v:.3f}")
    text = show(value)
    if isinstance(interval, (list, tuple)) and len(interval) == 2 and value is not None:
        text += f" [{show(interval[0])}, {show(interval[1])}]"
    return text


def _figures(entry: dict) -> list[str]:
    return [str(entry.get("members", "")), str(entry.get("non_members", "")),
            _with_interval(entry.get("auc"), entry.get("auc_interval"), percent=False),
            _with_interval(entry.get("tpr_at_fpr_1pct"), entry.get("tpr_at_fpr_1pct_interval")),
            _with_interval(entry.get("tpr_at_fpr_0_1pct"), entry.get("tpr_at_fpr_0_1pct_interval"))]


def privacy_tables(report: dict) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """``[(title, header, rows, notes)]`` of the privacy section (empty without one)."""
    section = report.get("privacy")
    if not isinstance(section, dict):
        return []
    rows = [["distilled", name, *_figures(entry)] for name, entry in section.get("attacks", {}).items()]
    rows += [[REFERENCE_NAMES.get(name, name), "loss", *_figures(entry)]
             for name, entry in section.get("references", {}).items()]
    gated = section.get("attacks", {}).get(section.get("gated_attack"), {})
    slices = [[f"group {e['group']}", *_figures(e)[:4]] for e in gated.get("per_group", [])]
    slices += [[f"class {e['class']}", *_figures(e)[:4]] for e in gated.get("per_class", [])]
    needed = section.get("non_members_needed", {})
    notes = [f"members: {section.get('members_source')}; non-members: {section.get('non_member_source')}. "
             f"A TPR at 1% / 0.1% FPR needs at least {needed.get('tpr_at_fpr_1pct')} / "
             f"{needed.get('tpr_at_fpr_0_1pct')} non-members (n/a below that). AUC 0.5 is chance; "
             f"intervals: {section.get('interval_method')}."]
    for name, amp in (section.get("amplification") or {}).items():
        ratio = amp.get("advantage_ratio")
        notes.append(f"against {REFERENCE_NAMES.get(name, name)[5:]}: AUC difference "
                     f"{amp.get('auc_difference', float('nan')):+.3f}, advantage ratio "
                     f"{'n/a' if ratio is None else f'{ratio:.2f}'} (loss attack)")
    return [("membership inference", PRIVACY_HEADER, rows, notes),
            (f"membership inference by slice ({section.get('gated_attack')} attack)", SLICE_HEADER, slices, [])]


def _condition(entry: dict) -> str:
    if "budget" in entry:
        return "clean" if not entry["budget"] else f"PGD {entry['budget_255']:g}/255"
    return f"{entry['corruption'].replace('_', ' ')} s{entry['severity']}"


def robustness_tables(report: dict) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    """``[(title, header, rows, notes)]`` of the robustness section (empty without one)."""
    section = report.get("robustness")
    if not isinstance(section, dict):
        return []
    refs = section.get("references") or {}
    header = ["condition", "accuracy % [CI]", "worst group %", "DEO_M % [CI]",
              *(f"{REFERENCE_NAMES.get(n, n)}: acc / DEO_M %" for n in refs)]
    rows = []
    for kind in ("pgd", "corruptions"):
        for index, entry in enumerate(section.get(kind, [])):
            cells = [_condition(entry), _with_interval(entry.get("accuracy"), entry.get("accuracy_interval")),
                     _pct(entry.get("worst_group_accuracy")),
                     _with_interval(entry.get("deo_max"), entry.get("deo_max_interval"))]
            for ref in refs.values():
                other = ref.get(kind, [])[index] if index < len(ref.get(kind, [])) else {}
                cells.append(f"{_pct(other.get('accuracy'))} / {_pct(other.get('deo_max'))}")
            rows.append(cells)
    notes = [f"{section.get('samples')} test images stratified by (class, group); {section.get('attack')}; "
             f"{section.get('pixel_space')}. Gates read PGD {section.get('gated_budget', 0) * 255:g}/255."]
    return [("robustness", header, rows, notes)]


def attack_tables(report: dict) -> list[tuple[str, list[str], list[list[str]], list[str]]]:
    return [*privacy_tables(report), *robustness_tables(report)]


def render_attacks(report: dict, console: Console) -> None:
    """The privacy and robustness tables on *console* (nothing when the report has neither)."""
    for title, header, rows, notes in attack_tables(report):
        table = Table(title=title, title_justify="left")
        for i, name in enumerate(header):
            table.add_column(name, justify="left" if i == 0 or name == "attack" else "right")
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
        for note in notes:
            console.print(f"[dim]{escape(note)}[/dim]")


def attacks_markdown(report: dict) -> list[str]:
    """Markdown lines of the privacy and robustness tables."""
    lines = []
    for title, header, rows, notes in attack_tables(report):
        lines += ["", f"{title[0].upper()}{title[1:]}:", "", "| " + " | ".join(header) + " |",
                  "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        lines += [*([""] if notes else []), *notes]
    return lines


def attacks_html(report: dict) -> str:
    """HTML sections of the privacy and robustness tables."""
    parts = []
    for title, header, rows, notes in attack_tables(report):
        body = _table(header, rows, left=(0, 1) if "attack" in header else (0,))
        body += "".join(f"<p>{_e(note)}</p>" for note in notes)
        parts.append(_section(title.split(" ")[0] + ("-slices" if "slice" in title else ""), title[0].upper() + title[1:], body))
    return "".join(parts)
