"""One self-contained HTML page per audit: verdict, gates, metrics, composition, pictures.

Everything is inline (CSS in a ``<style>`` element, pictures as base64 PNG data
URIs) and the page has no script and loads nothing from the network, so it can
be attached to a CI run, mailed or opened offline and shows the same thing.
"""

from __future__ import annotations

import base64

from ddaudit.report._attacks import attacks_html
from ddaudit.report._attributes import attributes_html
from ddaudit.report._composition import COMPOSITION_HEADER, LEFT, composition_rows, composition_summary
from ddaudit.report._markup import _e, _section, _table
from ddaudit.report._rows import cell_matrix, headline_rows, interval_cells, interval_headers, interval_note

#: The browser itself refuses anything but inline styles and data: images (no script, no fetch).
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

VERDICTS = {
    "pass": ("PASS", "every gate holds"),
    "fail": ("FAIL", "at least one gate failed"),
    "inconclusive": ("INCONCLUSIVE", "no gate failed, but at least one could not be decided on this evidence"),
    "not_gated": ("NOT GATED", "no threshold was set: the figures below are for reading, not for a decision"),
}

PICTURE_CAPTIONS = {
    "synthetic_by_group": "The distilled set, one row per class; each image is framed in the colour of the group the "
                          "probe predicts for it (dashed grey: the classifier is unsure).",
    "composition": "Share of each predicted group within each class of the distilled set; the real class's majority "
                   "group is framed.",
    "accuracy_by_cell": "Evaluator accuracy on the real test set per (class, group) cell.",
    "distilled_vs_reference": "The distilled set beside a random real subset with the same images per class (the "
                              "reference the amplification factor is measured against).",
}

STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d9dde5; --pass: #1f7a3a; --fail: #b3261e;
        --inconclusive: #a15c00; --not-gated: #44546a; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1100px; padding: 24px 28px 48px; color: var(--ink);
       font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
h1 { font-size: 24px; margin: 0 0 4px; } h2 { font-size: 19px; margin: 28px 0 10px; border-bottom: 1px solid var(--line);
  padding-bottom: 4px; }
.sub { color: var(--muted); margin: 0; word-break: break-all; }
.verdict { border-radius: 8px; padding: 14px 18px; margin-top: 18px; color: #fff; }
.verdict h2 { border: 0; margin: 0; font-size: 14px; text-transform: uppercase; letter-spacing: .06em; opacity: .85; }
.verdict .status { font-size: 30px; font-weight: 700; margin: 2px 0; }
.verdict p { margin: 0; }
.status-pass { background: var(--pass); } .status-fail { background: var(--fail); }
.status-inconclusive { background: var(--inconclusive); } .status-not_gated { background: var(--not-gated); }
table { border-collapse: collapse; margin: 6px 0 10px; font-size: 13.5px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: right; white-space: nowrap; }
td.text.gate { white-space: nowrap; }
th { background: #f3f5f8; } th:first-child, td:first-child { text-align: left; }
td.text, th.text { text-align: left; } td.text { white-space: normal; }
.scroll { overflow-x: auto; }
.result-pass { color: var(--pass); font-weight: 600; } .result-fail { color: var(--fail); font-weight: 600; }
.result-inconclusive { color: var(--inconclusive); font-weight: 600; }
figure { margin: 14px 0 22px; } figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
.warnings li { color: #7a4b00; } dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; font-size: 13.5px; }
dt { color: var(--muted); } dd { margin: 0; word-break: break-all; }
footer { margin-top: 32px; color: var(--muted); font-size: 12.5px; }
"""


def _verdict(report: dict) -> str:
    status = report.get("status") or "not_gated"
    word, meaning = VERDICTS.get(status, (status.upper(), ""))
    gates = report.get("gates") or []
    counts = ""
    if gates:
        n_fail = sum(1 for g in gates if not g.get("passed") and not g.get("inconclusive"))
        n_inc = sum(1 for g in gates if g.get("inconclusive"))
        counts = f" ({len(gates)} gate{'s' if len(gates) != 1 else ''}: {len(gates) - n_fail - n_inc} pass, {n_fail} fail, {n_inc} inconclusive)"
    return (f'<section id="verdict" class="verdict status-{_e(status)}"><h2>Verdict</h2>'
            f'<p class="status" data-status="{_e(status)}">{_e(word)}</p><p>{_e(meaning + counts)}</p></section>')


def _gates(report: dict) -> str:
    gates = report.get("gates") or []
    if not gates:
        return _section("gates", "Gates", "<p>No gate was set. Add thresholds (e.g. <code>--max-deo-max 0.3</code>, "
                                          "<code>--max-majority-share 0.5</code>) or a <code>[tool.ddaudit]</code> "
                                          "configuration to decide.</p>")
    rows = []
    for g in gates:
        outcome = "inconclusive" if g.get("inconclusive") else ("pass" if g.get("passed") else "fail")
        value = "n/a" if g.get("value") is None else f"{g['value']:.4g}"
        rows.append(
            f'<tr><td class="text gate">{_e("--" + str(g.get("name", "")).replace("_", "-"))}</td>'
            f'<td class="text">{_e(g.get("metric"))} ({_e(g.get("basis"))})</td><td>{_e(value)}</td>'
            f'<td>{_e(g.get("operator"))} {_e(g.get("threshold"))}</td>'
            f'<td class="result-{outcome}">{_e(outcome)}</td><td class="text">{_e(g.get("reason"))}</td></tr>'
        )
    head = "".join(f'<th class="{"text" if h in ("gate", "metric", "note") else ""}">{h}</th>'
                   for h in ("gate", "metric", "value", "required", "result", "note"))
    return _section("gates", "Gates", f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                                      f'<tbody>{"".join(rows)}</tbody></table></div>')


def _metrics(report: dict) -> str:
    rows = headline_rows(report)
    if not rows:
        return ""
    settings = report.get("settings", {})
    refs = list(report.get("reference", {}))
    level = settings.get("confidence", 0.95)
    headers = interval_headers(report)
    headers = [f"{100 * level:g}% CI"] if headers == ["CI"] else headers
    header = ["metric (%)", "distilled: mean ± std", *headers, *[f"ref: {r.replace('_', ' ')}" for r in refs]]
    if report.get("amplification"):
        header.append("amplification (ratio / diff)")
    body = []
    for row in rows:
        cells = [row["label"], row["value"], *interval_cells(headers, row), *(row["references"].get(r, "") for r in refs)]
        if report.get("amplification"):
            cells.append(row["amplification"])
        body.append(cells)
    proto = settings.get("protocol", {})
    methods = sorted({str(m.get("ci_method")) for m in (report.get("metrics") or {}).values()
                      if isinstance(m, dict) and m.get("ci_method")})
    note = (f"<p>{_e(settings.get('num_eval'))} x {_e(proto.get('model'))} evaluators, protocol {_e(proto.get('name'))} "
            f"({_e(proto.get('epochs'))} epochs, aug {_e(proto.get('aug'))}), seed {_e(settings.get('seed'))}; "
            f"final-epoch accuracy on {_e(report.get('real', {}).get('test_size'))} real test images; "
            f"{100 * level:g}% intervals" + (f" ({_e(', '.join(methods))}, per metric)" if methods else "") + ".</p>"
            + (f"<p>{_e(interval_note(report))}</p>" if interval_note(report) else ""))
    return _section("metrics", "Metrics", _table(header, body) + note)


def _composition(report: dict) -> str:
    if not report.get("composition"):
        return ""
    left = tuple(i for i, h in enumerate(COMPOSITION_HEADER) if h in LEFT)
    notes = "".join(f"<li>{_e(w)}</li>" for w in report["composition"].get("warnings") or [])
    return _section("composition", "Composition (group probe)",
                    f"<p>{_e(composition_summary(report))}</p>"
                    + (f'<ul class="warnings">{notes}</ul>' if notes else "")
                    + _table(COMPOSITION_HEADER, composition_rows(report), left=left))


def _cells(report: dict) -> str:
    classes, groups, grid = cell_matrix(report)
    if not classes or not groups or not report.get("cells"):
        return ""
    table = _table(["class", *map(str, groups)], [[str(c), *r] for c, r in zip(classes, grid)])
    return _section("cells", "Accuracy % (test count) per class x group", table)


def _pictures(pictures: dict[str, bytes]) -> str:
    if not pictures:
        return ""
    figures = []
    for name, png in pictures.items():
        data = base64.b64encode(png).decode("ascii")
        caption = PICTURE_CAPTIONS.get(name, name.replace("_", " "))
        figures.append(f'<figure id="picture-{_e(name)}"><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
                       f"<figcaption>{_e(caption)}</figcaption></figure>")
    return _section("pictures", "Pictures", "".join(figures))


def _warnings(report: dict) -> str:
    warnings = report.get("warnings") or []
    if not warnings:
        return ""
    return _section("warnings", "Warnings", '<ul class="warnings">' + "".join(f"<li>{_e(w)}</li>" for w in warnings) + "</ul>")


def _settings(report: dict) -> str:
    syn, real, settings = report.get("synthetic", {}), report.get("real", {}), report.get("settings", {})
    items = [
        ("distilled set", syn.get("path")), ("format", syn.get("format")), ("images", syn.get("images")),
        ("images per class", syn.get("ipc")), ("pixel space", syn.get("space")), ("real data", real.get("name")),
        ("classes x groups", f"{real.get('num_classes')} x {real.get('num_groups')}"),
        ("real train / test", f"{real.get('train_size')} / {real.get('test_size')}"),
        ("seed", settings.get("seed")), ("device", settings.get("device")), ("torch", settings.get("torch")),
    ]
    body = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items if v is not None)
    return _section("settings", "Settings", f"<dl>{body}</dl>")


def to_html(report: dict, pictures: dict[str, bytes] | None = None) -> str:
    """The report as one HTML document (a string), with *pictures* (``{name: PNG bytes}``) inline."""
    syn, real = report.get("synthetic", {}), report.get("real", {})
    title = f"ddaudit: {syn.get('path')} on {real.get('name')}"
    kind = "composition probe" if report.get("schema", "").startswith("ddaudit.probe") else "fairness audit"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>{_e(title)}</title><style>{STYLE}</style></head><body>",
        f"<header><h1>ddaudit {kind}</h1><p class=\"sub\">{_e(syn.get('path'))} "
        f"({_e(syn.get('format'))}, {_e(syn.get('images'))} images, ipc {_e(syn.get('ipc'))}) on {_e(real.get('name'))}</p></header>",
        _verdict(report),
        _gates(report),
        _metrics(report),
        _composition(report),
        _cells(report),
        attributes_html(report),
        attacks_html(report),
        _pictures(pictures or {}),
        _warnings(report),
        _settings(report),
        f"<footer>ddaudit {_e(report.get('ddaudit_version'))}, schema {_e(report.get('schema'))}. "
        "Self-contained page: no script, nothing loaded from the network.</footer>",
        "</body></html>",
    ]
    return "\n".join(part for part in parts if part) + "\n"
