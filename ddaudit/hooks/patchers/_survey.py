"""What a script imports and calls, for refusals and adapter hints.

When no patcher recognises a fork, the user needs to know which of its functions
load the data and compute the matched features. This lists them from the
script's syntax tree (nothing is run): names imported from modules next to the
script, functions it defines, and the attribute calls whose names suggest a
matching site (``embed``, ``feature``, ``attention``, ``match``, ``loss``, ``grad``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

_MATCHING = re.compile(r"embed|feat|attention|match|loss|grad|dataset|network", re.IGNORECASE)
#: Optimiser and autograd plumbing that the pattern above would also catch.
_PLUMBING = {"zero_grad", "backward", "requires_grad_", "set_grad_enabled", "no_grad", "enable_grad"}

ADAPTER_HINT = (
    "; to run this fork anyway, describe it in an adapter file and pass --adapter FILE: "
    "[dataset] module, function, returns (e.g. [\"channel\", \"im_size\", \"num_classes\", \"class_names\", "
    "\"mean\", \"std\", \"train\", \"test\", \"testloader\"]), rows (pair|triple); [matching] kind (embed|gradient|feature|feature_loss) "
    "with network_module/network_function and method (embed), match_module/match_function (gradient), "
    "feature_module/feature_function (feature: per-row values) or loss_module/loss_function (feature_loss: "
    "a loss of real and synthetic features); see examples/adapter.toml{seen}"
)


def survey(source: str, root: Path) -> dict:
    """``{"local_imports": {module: [names]}, "defines": [...], "calls": [...]}`` of one script."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return {"local_imports": {}, "defines": [], "calls": []}
    local = {p.stem for p in root.glob("*.py")}
    imports: dict[str, list[str]] = {}
    defines, calls = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in local:
            imports.setdefault(node.module, []).extend(alias.name for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defines.add(node.name)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name and _MATCHING.search(name) and name not in _PLUMBING:
                calls.add(name)
    return {
        "local_imports": {m: sorted(set(n)) for m, n in sorted(imports.items())},
        "defines": sorted(defines),
        "calls": sorted(calls),
    }


def describe(found: dict) -> str:
    """One line naming what the survey found, for the refusal message."""
    parts = []
    for module, names in found.get("local_imports", {}).items():
        parts.append(f"from {module}: {', '.join(names)}")
    if found.get("calls"):
        parts.append("calls " + ", ".join(found["calls"]))
    return f" (seen in the script: {'; '.join(parts)})" if parts else ""
