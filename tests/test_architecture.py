"""Imports inside ddaudit run one way: no circles, and no lower layer imports a higher one.

The modules are read with :mod:`ast`, never imported, so the test sees every
import (at module level and inside functions) and needs nothing installed.
Lazy name maps (:func:`ddaudit._lazy.lazy_getattr`) are strings, not imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "ddaudit"

#: Layers from the bottom up. A module belongs to the layer of its longest listed
#: prefix (``X.__init__`` names a package's own ``__init__`` alone); it may import
#: its own layer and the ones below, never one above.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("base utilities", ("ddaudit.errors", "ddaudit._lazy", "ddaudit._version", "ddaudit.hashing", "ddaudit.devices",
                        "ddaudit.choices", "ddaudit._output", "ddaudit.reproducibility")),
    ("inputs", ("ddaudit.io", "ddaudit.data", "ddaudit._seeds")),
    ("measurement", ("ddaudit.metrics", "ddaudit.evaluate")),
    ("report", ("ddaudit.report",)),
    # They only read reports and must stay light (``ddaudit gate`` never imports torch).
    ("gates and preflight", ("ddaudit.gate", "ddaudit.preflight")),
    ("analyses", ("ddaudit.mitigate", "ddaudit.privacy", "ddaudit.robustness", "ddaudit.distributed",
                  "ddaudit.reference_cache")),
    # @fair_matching, group sources and the helpers every codebase patcher shares.
    ("hooks", ("ddaudit.hooks",)),
    # One codebase each: none imports another (shared helpers live in the layer below).
    ("codebase patchers", tuple(f"ddaudit.hooks.patchers.{name}"
                                for name in ("adapter", "datadam", "datasetcondensation", "idc", "idm", "mtt"))),
    ("patch session", ("ddaudit.hooks.patchers._session", "ddaudit.hooks.patchers.__init__")),
    ("reference distillers", ("ddaudit.distill",)),
    ("attack sections", ("ddaudit.attacks",)),
    ("audit", ("ddaudit.auditing",)),
    ("probe", ("ddaudit.probe",)),
    ("demo", ("ddaudit.demo",)),
    ("command line", ("ddaudit.cli",)),
    ("entry points", ("ddaudit.__main__", "ddaudit.__init__")),
]


# ---------------------------------------------------------------- the checker


def module_files(root: Path, package: str) -> dict[str, tuple[Path, bool]]:
    """``{module: (path, is_package)}`` for every ``.py`` file under *root* (the folder of *package*)."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return modules


def _known(name: str, modules) -> str | None:
    """The longest prefix of dotted *name* that is a module of the package."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def import_graph(root: Path, package: str) -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over the package's own modules.

    Every ``import`` and ``from ... import`` counts, wherever it sits; ``from P import n``
    is an import of ``P.n`` when that is a module, else of ``P`` (a package's ``__init__``).
    """
    modules = module_files(root, package)
    graph: dict[str, dict[str, int]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rpartition(".")[0]
        edges: dict[str, int] = {}

        def add(target: str | None, line: int) -> None:
            if target is not None and target != name:
                edges[target] = min(line, edges.get(target, line))

        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name == package or alias.name.startswith(package + "."):
                        add(_known(alias.name, modules), node.lineno)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source != package and not source.startswith(package + "."):
                    continue
                for alias in node.names:
                    submodule = f"{source}.{alias.name}"
                    add(submodule if submodule in modules else _known(source, modules), node.lineno)
        graph[name] = edges
    return graph


def import_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, {}):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def describe_cycle(component: list[str], graph: dict[str, dict[str, int]]) -> str:
    members = set(component)
    edges = [f"  {source} -> {target} (line {line})" for source in component
             for target, line in sorted(graph[source].items()) if target in members]
    return "circle of " + ", ".join(component) + ":\n" + "\n".join(edges)


def layer_of(name: str, is_package: bool, layers) -> int | None:
    """Index of *name*'s layer: its longest listed prefix (``X.__init__`` for a package itself)."""
    table = {prefix: rank for rank, (_, prefixes) in enumerate(layers) for prefix in prefixes}
    if is_package and f"{name}.__init__" in table:
        return table[f"{name}.__init__"]
    while name:
        if name in table:
            return table[name]
        name = name.rpartition(".")[0]
    return None


def layer_problems(root: Path, package: str, layers) -> tuple[list[str], list[str]]:
    """``(modules in no layer, upward imports)``, one line each."""
    modules = module_files(root, package)
    graph = import_graph(root, package)
    rank = {name: layer_of(name, is_package, layers) for name, (_, is_package) in modules.items()}
    unplaced = sorted(name for name, value in rank.items() if value is None)
    upward = [
        f"{source} ({layers[rank[source]][0]}) imports {target} ({layers[rank[target]][0]}) at line {line}"
        for source, targets in sorted(graph.items()) for target, line in sorted(targets.items())
        if rank[source] is not None and rank[target] is not None and rank[target] > rank[source]
    ]
    return unplaced, upward


# ---------------------------------------------------------------- ddaudit itself


def test_no_module_imports_itself_through_others():
    graph = import_graph(PACKAGE_ROOT, "ddaudit")
    assert len(graph) > 100  # the walk found the package
    cycles = import_cycles(graph)
    assert not cycles, "\n".join(describe_cycle(component, graph) for component in cycles)


def test_every_module_has_a_layer_and_no_layer_imports_a_higher_one():
    unplaced, upward = layer_problems(PACKAGE_ROOT, "ddaudit", LAYERS)
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"
    assert not upward, "imports from a lower layer into a higher one:\n" + "\n".join(upward)


def test_the_library_never_imports_the_command_line():
    graph = import_graph(PACKAGE_ROOT, "ddaudit")
    callers = sorted(source for source, targets in graph.items() if not source.startswith(("ddaudit.cli", "ddaudit.__main__"))
                     for target in targets if target == "ddaudit.cli" or target.startswith("ddaudit.cli."))
    assert callers == []


# ---------------------------------------------------------------- the checker catches what it should


def _write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


PLANTED = {
    "pkg/__init__.py": '_LAZY = {"pkg.high": ("run",)}  # a lazy map is a string, not an import\n',
    "pkg/low.py": "import os\n\n\ndef helper():\n    from pkg.high import run  # upward, and back: a circle\n    return run\n",
    "pkg/high.py": "from . import low\n\n\ndef run():\n    return low\n",
    # A submodule importing its own package's __init__, which imports it: a circle.
    "pkg/sub/__init__.py": "from ._x import f\n",
    "pkg/sub/_x.py": "def f():\n    from .. import sub\n    return sub\n",
    "pkg/sub/_y.py": "from pkg.sub import _x\nfrom pkg import low as _low\n",
}
PLANTED_LAYERS = [("low", ("pkg.low", "pkg.__init__")), ("sub", ("pkg.sub",)), ("high", ("pkg.high",))]


def test_the_checker_resolves_absolute_relative_and_function_level_imports(tmp_path):
    root = _write(tmp_path, PLANTED) / "pkg"
    graph = import_graph(root, "pkg")
    assert graph["pkg"] == {}
    assert graph["pkg.low"] == {"pkg.high": 5}
    assert graph["pkg.high"] == {"pkg.low": 1}
    assert graph["pkg.sub"] == {"pkg.sub._x": 1}
    assert graph["pkg.sub._x"] == {"pkg.sub": 2}
    assert graph["pkg.sub._y"] == {"pkg.sub._x": 1, "pkg.low": 2}


def test_the_checker_catches_a_planted_circle_and_an_upward_import(tmp_path):
    root = _write(tmp_path, PLANTED) / "pkg"
    graph = import_graph(root, "pkg")
    cycles = import_cycles(graph)
    assert cycles == [["pkg.high", "pkg.low"], ["pkg.sub", "pkg.sub._x"]]
    assert "pkg.low -> pkg.high (line 5)" in describe_cycle(cycles[0], graph)
    unplaced, upward = layer_problems(root, "pkg", PLANTED_LAYERS)
    assert unplaced == []
    assert upward == ["pkg.low (low) imports pkg.high (high) at line 5"]
    unplaced, _ = layer_problems(root, "pkg", PLANTED_LAYERS[1:])
    assert unplaced == ["pkg", "pkg.low"]


def test_the_checker_passes_a_one_way_package(tmp_path):
    files = {"pkg/__init__.py": "from pkg.high import run\n", "pkg/low.py": "X = 1\n",
             "pkg/high.py": "from .low import X\n\n\ndef run():\n    import pkg.low\n    return pkg.low.X + X\n"}
    root = _write(tmp_path, files) / "pkg"
    assert import_cycles(import_graph(root, "pkg")) == []
    layers = [("low", ("pkg.low",)), ("high", ("pkg.high",)), ("top", ("pkg.__init__",))]
    assert layer_problems(root, "pkg", layers) == ([], [])
