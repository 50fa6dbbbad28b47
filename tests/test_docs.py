"""The README and the pages under docs/ tell the truth, and the site builds.

The README is a front door (under 10 KB) whose two commands are the ones CI runs; every link
resolves; every command and option of the CLI, every metric, preset, reader, codebase, exit code
and layer is documented as the code defines it; every module, function and file the pages name
exists; and ``mkdocs build --strict`` passes. The facts the README held before the pages existed
(its headings, its section lead-ins, its inline code terms) are all still findable.
"""

from __future__ import annotations

import ast
import importlib
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import typer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PACKAGE = ROOT / "ddaudit"
TERMS_BEFORE = Path(__file__).parent / "fixtures" / "docs" / "readme_terms_before_docs.txt"

#: The two commands at the top of the README, byte for byte; CI runs the second.
DEMO_COMMAND = "python3 -m venv .venv && . .venv/bin/activate && pip install . && ddaudit demo"
TEST_COMMAND = 'python3 -m venv .venv && . .venv/bin/activate && pip install ".[test]" && python -m pytest -q'
README_LIMIT = 10_240

#: The headings of the README before its content moved into docs/ (``git show main:README.md``
#: at 472c727); each must still be a heading in README.md or a page.
OLD_README_HEADINGS = [
    "ddaudit",
    "Quick start",
    "Auditing a distilled set",
    "Probing what a distilled set is made of",
    "Making a distiller fair",
    "Your own loss: `@fair_matching`",
    "Unmodified third-party code: `ddaudit run`",
    "Without group labels: KDE weights and pseudo-groups",
    "Reference distillers",
    "Gating CI on fairness",
    "Several processes, GPUs and machines (torchrun)",
    "Architecture",
    "Determinism",
    "Performance",
]

#: The bold lead-ins that opened the README's paragraphs and list items (the same README); each
#: must still be a heading or a bold lead-in somewhere.
OLD_README_LEAD_INS = [
    "Make dataset distillation fair, and prove it.",
    "Readers", "Pixel space", "Real data", "Evaluators", "Metrics", "Amplification factor",
    "Privacy and robustness", "Outputs", "Exit codes", "Pictures and an HTML page", "IDM",
    "Group-balanced batches", "On your data", "The decision rule", "pass", "fail", "inconclusive",
    "How the interval is built", "What is promised.", "Certain violation, small cells: exit 1.",
    "Certain pass, small cells: exit 0.", "Inconclusive: exit 3.", "Who does what.", "Same report.",
    "Failures.", "Exit codes.", "Threads.", "Other commands.",
    "A file, from `check`'s argument to the written report.",
    "The seed, from the CLI to every random draw.",
    "A new metric, from its definition to the gate that reads it.",
    "Bit for bit", "Across thread counts or CPUs",
]

FILE_SUFFIXES = {"toml", "py", "json", "md", "yml", "yaml", "pt", "npz", "npy", "html", "xml", "txt", "csv", "png"}


# ---------------------------------------------------------------- reading markdown


def pages() -> list[Path]:
    return sorted(DOCS.glob("*.md"))


def documents() -> list[Path]:
    return [README, *pages()]


def docs_text() -> str:
    return "\n".join(page.read_text(encoding="utf-8") for page in pages())


def fenced_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def prose(text: str) -> str:
    """*text* without fenced blocks and inline code (where links are not links)."""
    text = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return re.sub(r"`[^`]*`", "", text)


def headings(text: str) -> list[str]:
    text = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.S | re.M)
    return [title.strip() for title in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)]


def github_slug(title: str) -> str:
    title = title.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", title).replace(" ", "-")


def mkdocs_slug(title: str) -> str:
    """Python-Markdown's toc slugify, on the heading's text with inline code marks removed."""
    title = unicodedata.normalize("NFKD", title.replace("`", "")).encode("ascii", "ignore").decode()
    title = re.sub(r"[^\w\s-]", "", title).strip().lower()
    return re.sub(r"[-\s]+", "-", title)


def anchors(path: Path) -> set[str]:
    """Anchors that work both on GitHub and in the built site: the headings whose two slugs agree."""
    found = set(re.findall(r'<a (?:id|name)="([^"]+)"', path.read_text(encoding="utf-8")))
    for title in headings(path.read_text(encoding="utf-8")):
        if github_slug(title) == mkdocs_slug(title):
            found.add(github_slug(title))
    return found


def links(path: Path) -> list[str]:
    return re.findall(r"!?\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)", prose(path.read_text(encoding="utf-8")))


def mentioned(term: str, text: str) -> bool:
    """*term* (a flag or word) appears in *text* on its own, not inside a longer flag."""
    return re.search(r"(?<![\w-])" + re.escape(term) + r"(?![\w-])", text) is not None


def table_rows(text: str, section: str) -> list[list[str]]:
    """The cells of the first table under the heading *section* (header and rule skipped)."""
    match = re.search(r"^#{1,6} " + re.escape(section) + r"\s*$(.*?)(?=^#{1,6} |\Z)", text, flags=re.S | re.M)
    assert match, f"no section {section!r}"
    lines = match.group(1).splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    assert len(rows) > 2, f"no table under {section!r}"
    return [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in rows[2:]]


def code_spans(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


# ---------------------------------------------------------------- the front door


def test_readme_is_a_front_door_under_10_kb():
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size} bytes; move detail into docs/ (limit {README_LIMIT})"


def test_readme_has_both_commands_byte_for_byte_at_the_top():
    text = README.read_text(encoding="utf-8")
    lines = [line for block in fenced_blocks(text) for line in block.splitlines()]
    for command in (DEMO_COMMAND, TEST_COMMAND):
        assert command in lines, f"README.md lost the command {command!r}"
        assert text.index(command) < text.index("\n## ", text.index("## Quick start") + 1), \
            f"{command!r} is not in the README's Quick start"


def test_the_readme_test_command_is_what_ci_runs():
    steps = []
    for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            steps += [step.strip() for step in line.split("&&")]
    # CI runs pip quietly; that is the only difference allowed.
    steps = [" ".join(word for word in step.split() if word != "--quiet") if step.startswith("pip ") else step
             for step in steps]
    readme_steps = [step.strip() for step in TEST_COMMAND.split("&&")]
    assert steps[-len(readme_steps):] == readme_steps, f".ci/run ends with {steps[-len(readme_steps):]}"


def test_readme_links_every_page():
    linked = {(README.parent / target.split("#")[0]).resolve() for target in links(README)}
    missing = [page.name for page in pages() if page.resolve() not in linked and page.name != "index.md"]
    assert not missing, f"README.md links no page {missing}"


# ---------------------------------------------------------------- links


def test_every_relative_link_resolves_to_a_file_and_anchor():
    broken = []
    for path in documents():
        for target in links(path):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...
                continue
            file_part, _, anchor = target.partition("#")
            destination = (path.parent / file_part).resolve() if file_part else path
            if not destination.exists():
                broken.append(f"{path.name}: {target} (no such file)")
            elif anchor and anchor not in anchors(destination):
                broken.append(f"{path.name}: {target} (no heading with that anchor)")
    assert not broken, "\n".join(broken)


def test_every_page_is_in_the_site_navigation():
    yml = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = set(re.findall(r"^\s*- [^:\n]+: (\S+\.md)\s*$", yml, flags=re.M))
    assert nav == {page.name for page in pages()}


def test_every_heading_has_the_same_anchor_on_github_and_in_the_site():
    differ = [f"{path.name}: {title!r} ({github_slug(title)} / {mkdocs_slug(title)})"
              for path in documents() for title in headings(path.read_text(encoding="utf-8"))
              if github_slug(title) != mkdocs_slug(title)]
    assert not differ, "a link to these headings works in one place only:\n" + "\n".join(differ)


# ---------------------------------------------------------------- the facts the README held


def _normal(text: str) -> str:
    return " ".join(text.split()).rstrip(".").casefold()


def test_every_old_readme_heading_is_still_a_heading():
    found = {_normal(title) for path in documents() for title in headings(path.read_text(encoding="utf-8"))}
    missing = [title for title in OLD_README_HEADINGS if _normal(title) not in found]
    assert not missing, f"headings the README had and no page has: {missing}"


def test_every_old_readme_lead_in_is_still_a_heading_or_lead_in():
    found = set()
    for path in documents():
        text = path.read_text(encoding="utf-8")
        found |= {_normal(title) for title in headings(text)}
        found |= {_normal(bold) for bold in re.findall(r"\*\*([^*]+)\*\*", text)}
    missing = [lead for lead in OLD_README_LEAD_INS if _normal(lead) not in found]
    assert not missing, f"lead-ins the README had and no page has: {missing}"


def test_every_old_readme_code_term_is_still_findable():
    terms = [line for line in TERMS_BEFORE.read_text(encoding="utf-8").splitlines() if line and not line.startswith("# ")]
    assert len(terms) > 300
    text = " ".join("\n".join(path.read_text(encoding="utf-8") for path in documents()).split())
    missing = [term for term in terms if term not in text]
    assert not missing, f"terms the README named and no page names: {missing}"


# ---------------------------------------------------------------- the CLI, as typer defines it


def _commands():
    from ddaudit.cli import app

    return typer.main.get_command(app).commands


def _options(command) -> list[str]:
    """Every flag of *command*, short and long, ``--no-*`` forms included (typer ships its own click)."""
    return [flag for param in command.params if param.param_type_name == "option"
            for flag in (*param.opts, *param.secondary_opts) if flag != "--help"]


def test_every_subcommand_is_documented():
    text = docs_text()
    commands = _commands()
    assert {"check", "gate", "probe", "run", "weights", "demo", "datasets"} <= set(commands)
    missing = [name for name in commands if not mentioned(f"ddaudit {name}", text)]
    assert not missing, f"commands no page mentions: {missing}"


@pytest.mark.parametrize("name", ["check", "gate", "probe", "run", "weights", "demo"])
def test_every_option_is_documented(name):
    options = _options(_commands()[name])
    assert options
    text = docs_text()
    missing = [flag for flag in options if not mentioned(flag, text)]
    assert not missing, f"options of `ddaudit {name}` no page under docs/ mentions: {missing}"


# ---------------------------------------------------------------- tables that mirror the code


def test_exit_code_table_matches_errors_py():
    import ddaudit.errors as errors
    from ddaudit.cli.check import CHECK_HELP
    from ddaudit.cli.gate import GATE_HELP

    rows = table_rows((DOCS / "exit-codes.md").read_text(encoding="utf-8"), "Exit codes")
    documented = {code_spans(name)[0]: int(code) for code, name, *_ in rows}
    defined = {name: value for name, value in vars(errors).items() if name.startswith("EXIT_")}
    assert documented == defined
    for help_text in (CHECK_HELP, GATE_HELP):
        said = {int(code) for code in re.findall(r"\b(\d+) [a-z]", help_text.split("Exit codes:")[1])}
        assert said <= set(defined.values()), f"the help names exit codes the table lacks: {said}"


def test_metric_table_matches_the_registry():
    from ddaudit.metrics import METRICS

    rows = table_rows((DOCS / "audit.md").read_text(encoding="utf-8"), "Metrics")
    documented = [name for row in rows for name in code_spans(row[0])]
    assert sorted(documented) == sorted(METRICS), "docs/audit.md's metric table differs from METRICS"


def test_presets_and_readers_match_the_registries():
    from ddaudit.data import available_presets
    from ddaudit.io._registry import _in_detection_order

    text = (DOCS / "data.md").read_text(encoding="utf-8")
    presets = [code_spans(row[0])[0] for row in table_rows(text, "Real data")]
    assert presets == list(available_presets()), "docs/data.md's preset table differs from `ddaudit datasets`"
    readers = [code_spans(row[0])[0] for row in table_rows(text, "Readers")]
    assert readers == [entry.name for entry in _in_detection_order()], \
        "docs/data.md's reader table is not the readers in detection order"


def test_codebase_table_matches_the_patchers():
    from ddaudit.hooks.patchers import _registry

    importlib.import_module("ddaudit.hooks.patchers")  # registers them
    rows = table_rows((DOCS / "codebases.md").read_text(encoding="utf-8"), "Codebases and forks")
    documented = {name for row in rows for name in code_spans(row[0]) if not name.startswith("--")}
    assert documented == set(_registry._PATCHERS) | set(_registry._ALIASES)


def test_architecture_layers_are_the_tested_layers():
    from test_architecture import LAYERS

    rows = table_rows((DOCS / "architecture.md").read_text(encoding="utf-8"), "Layers")
    documented = [(row[0], tuple(code_spans(row[1]))) for row in rows]
    assert documented == [(name, tuple(prefixes)) for name, prefixes in LAYERS]


def test_api_page_documents_every_public_name():
    import ddaudit

    text = (DOCS / "api.md").read_text(encoding="utf-8")
    sections = dict(re.findall(r"^## `ddaudit\.(\w+)`\s*$(.*?)(?=^## |\Z)", text, flags=re.S | re.M))
    for name in ddaudit.__all__:
        if name == "__version__":
            continue
        assert name in sections, f"docs/api.md has no section for ddaudit.{name}"
        targets = re.findall(r"^::: ([\w.]+)\s*$", sections[name], flags=re.M)
        assert len(targets) == 1, f"ddaudit.{name}: one ::: directive expected, found {targets}"
        exported = getattr(ddaudit, name)
        if isinstance(exported, type(ddaudit)):  # a callable module: ddaudit.probe(...) is its function
            exported = getattr(exported, name)
        assert _resolve(targets[0]) is exported, f"::: {targets[0]} is not ddaudit.{name}"


# ---------------------------------------------------------------- what the pages name exists


def _resolve(dotted: str):
    """The object a dotted ``ddaudit...`` name names (a module file counts without importing it)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            break
    else:
        raise AssertionError(f"{dotted}: no such module")
    if end == len(parts):
        return base
    obj = importlib.import_module(".".join(parts[:end]))
    for attribute in parts[end:]:
        obj = getattr(obj, attribute)
    return obj


def _dotted_names(text: str, roots: set[str]) -> set[str]:
    names = set()
    for match in re.finditer(r"(?<![\w./-])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)", text):
        name = match.group(1)
        if name.split(".")[0] in roots and name.split(".")[-1] not in FILE_SUFFIXES:
            names.add(name)
    return names


def test_every_ddaudit_name_the_pages_use_exists():
    missing = []
    for path in documents():
        for name in sorted(_dotted_names(path.read_text(encoding="utf-8"), {"ddaudit"})):
            try:
                _resolve(name)
            except (AttributeError, ImportError, AssertionError) as error:
                missing.append(f"{path.name}: {name} ({error})")
    assert not missing, "\n".join(missing)


def test_every_repository_path_the_pages_name_exists():
    tops = ("ddaudit/", "tests/", "benchmarks/", "examples/", "hooks/", "docs/", ".ci/")
    missing = []
    for path in documents():
        text = re.sub(r"^```[^\n]*\n.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)
        for span in re.findall(r"`([^`]+)`", text):
            for word in span.split():
                word = word.strip("(),:;")
                if word.startswith(tops) and not list(ROOT.glob(word.rstrip("/"))):
                    missing.append(f"{path.name}: {word}")
    assert not missing, "\n".join(missing)


def _defined_names() -> set[str]:
    names = set()
    for source in PACKAGE.rglob("*.py"):
        names.add(source.stem)
        names.add(source.parent.name)
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names |= {arg.arg for arg in (*node.args.args, *node.args.kwonlyargs)}
            elif isinstance(node, ast.Assign):
                names |= {target.id for target in node.targets if isinstance(target, ast.Name)}
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names.add(node.target.id)
    return names


#: Names in the walks that are not ddaudit's own: numpy's, and a placeholder.
FOREIGN_NAMES = {"SeedSequence", "default_rng", "max_name", "GitHub"}


def test_the_architecture_walks_name_what_exists():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    blocks = "\n".join(fenced_blocks(text))
    assert blocks.count("\n") > 40, "the three walks are missing"
    roots = {path.stem for path in PACKAGE.glob("*.py")} | {path.name for path in PACKAGE.iterdir() if path.is_dir()}
    problems = []
    for name in sorted(_dotted_names(blocks, roots - {"__pycache__"})):
        try:
            _resolve(f"ddaudit.{name}")
        except (AttributeError, ImportError, AssertionError) as error:
            problems.append(f"{name} ({error})")
    for word in re.split(r"[\s,()]+", blocks):
        word = word.strip(":")
        if re.fullmatch(r"[\w*]+(/[\w*]+)*(\.py|/)", word) and not list(PACKAGE.glob(word.rstrip("/"))):
            problems.append(f"ddaudit/{word} (no such file)")
    defined = _defined_names()
    for word in sorted(set(re.findall(r"(?<![\w-])[A-Za-z_]\w*(?![\w-])", blocks))):
        named = len(word) > 1 and ("_" in word or re.search(r"[a-z][A-Z]", word))
        if named and word not in defined and word not in FOREIGN_NAMES:
            problems.append(f"{word} (defined nowhere in ddaudit/)")
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the site


def test_the_site_builds_in_strict_mode(tmp_path):
    site = tmp_path / "site"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"), "-d", str(site)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "WARNING" not in result.stdout + result.stderr, result.stdout + result.stderr
    for page in pages():
        built = site / ("index.html" if page.stem == "index" else f"{page.stem}/index.html")
        assert built.is_file(), f"{page.name} was not built"
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for target in re.findall(r"^::: ([\w.]+)\s*$", (DOCS / "api.md").read_text(encoding="utf-8"), flags=re.M):
        assert f'id="{target}"' in api, f"the API page does not document {target}"
