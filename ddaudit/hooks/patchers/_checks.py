"""Refuse to patch code that does not look as expected, naming what was expected.

A fork that renamed ``match_loss`` or changed its parameters would otherwise run
unpatched and look fair. Every patcher checks its targets before touching them.
"""

from __future__ import annotations

import ast
import inspect
import re
import types

from ddaudit.errors import PatchError

ERR_NO_MODULE = (
    "{codebase}: expected {module}.py next to {script} (found no such module); "
    "run the script from an unmodified {codebase} checkout or a fork with the same layout"
)
ERR_MISSING = (
    "{codebase}: expected function {module}.{signature} in {path}, found none; "
    "this looks like another version or fork that the patcher does not know"
)
ERR_SIGNATURE = (
    "{codebase}: expected {module}.{signature} in {path}, found {found}; "
    "this looks like another version or fork that the patcher does not know"
)
ERR_CALL_SITE = (
    "{codebase}: {script} does not {what} (expected `{pattern}`); "
    "this looks like another version or fork that the patcher does not know"
)


def module_path(module: types.ModuleType) -> str:
    return getattr(module, "__file__", None) or module.__name__


def _parse_signature(signature: str) -> tuple[str, list[str]]:
    """``"f(a, b=(1, 2))"`` -> ``("f", ["a", "b"])``."""
    node = ast.parse(f"def {signature}: pass").body[0]
    return node.name, [a.arg for a in node.args.posonlyargs + node.args.args]


def require_function(codebase: str, module: types.ModuleType, signature: str, *, label: str | None = None):
    """Return ``module.<name>`` if it is callable and its leading parameters match *signature*.

    *signature* is written as in the error message, e.g.
    ``"match_loss(gw_syn, gw_real, args)"``; parameters after those listed are
    allowed when they have defaults (forks that add options keep working).
    """
    name, expected = _parse_signature(signature)
    label = label or module.__name__
    if isinstance(module, dict):
        fn, path = module.get(name), label
    else:
        fn, path = getattr(module, name, None), module_path(module)
    if fn is None or not callable(fn):
        raise PatchError(ERR_MISSING.format(codebase=codebase, module=label, signature=signature, path=path))
    target = fn.__init__ if isinstance(fn, type) else fn
    try:
        parameters = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return fn
    if isinstance(fn, type):
        parameters = parameters[1:]
    found = [p.name for p in parameters[: len(expected)]]
    extra_required = [
        p for p in parameters[len(expected):]
        if p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    if found != expected or extra_required:
        shown = f"{name}({', '.join(p.name for p in parameters)})"
        raise PatchError(
            ERR_SIGNATURE.format(codebase=codebase, module=label, signature=signature, path=path, found=shown)
        )
    return fn


def require_call_site(codebase: str, script: str, source: str, pattern: str, what: str) -> None:
    """The script's source must contain the call the patch relies on (a regex)."""
    if not re.search(pattern, source):
        shown = pattern.replace("\\s*", "").replace("\\", "")
        raise PatchError(ERR_CALL_SITE.format(codebase=codebase, script=script, what=what, pattern=shown))
