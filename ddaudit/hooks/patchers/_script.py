"""Run a third-party script as ``__main__`` in this process, in two phases.

First its top-level statements up to ``if __name__ == "__main__":`` (imports and
definitions: ``from utils import match_loss`` binds whatever ``utils.match_loss``
is at that moment), then the main block and anything after it. Between the two
a callback may patch the script's own globals: IDC's ``matchloss`` is defined and
called in the script itself, where patching a module from outside changes nothing.
The source is compiled as it is, so tracebacks point at the script's real lines.
"""

from __future__ import annotations

import ast
import builtins
import sys
import types
from pathlib import Path
from typing import Callable, Sequence

from ddaudit.errors import InputError

ERR_SCRIPT_SYNTAX = "cannot parse {script}: {error}"


def _is_main_guard(node: ast.stmt) -> bool:
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.ops) != 1:
        return False
    sides = [node.test.left, *node.test.comparators]
    has_name = any(isinstance(s, ast.Name) and s.id == "__name__" for s in sides)
    has_main = any(isinstance(s, ast.Constant) and s.value == "__main__" for s in sides)
    return has_name and has_main and isinstance(node.test.ops[0], ast.Eq)


def split_script(source: str, filename: str) -> tuple[types.CodeType, types.CodeType | None]:
    """Compile a script as (definitions, main block and everything after it)."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as error:
        raise InputError(ERR_SCRIPT_SYNTAX.format(script=filename, error=error.msg)) from None
    body = tree.body
    split = next((i for i, node in enumerate(body) if _is_main_guard(node)), len(body))
    head = compile(ast.Module(body=body[:split], type_ignores=[]), filename, "exec", dont_inherit=True)
    if split == len(body):
        return head, None
    tail = compile(ast.Module(body=body[split:], type_ignores=[]), filename, "exec", dont_inherit=True)
    return head, tail


def run_as_main(
    path: Path, source: str, argv: Sequence[str], *, argv0: str, between: Callable[[dict], None]
) -> None:
    """Execute the script with ``sys.argv = [argv0, *argv]``; ``between(namespace)`` runs after phase one.

    ``SystemExit`` with status 0 or ``None`` counts as success; any other exit or
    exception propagates. ``sys.argv`` and ``sys.modules["__main__"]`` are restored.
    """
    head, tail = split_script(source, str(path))
    module = types.ModuleType("__main__")
    module.__file__ = str(path)
    module.__builtins__ = builtins
    module.__loader__ = None
    module.__spec__ = None
    module.__package__ = None
    saved_main, saved_argv = sys.modules.get("__main__"), sys.argv
    sys.modules["__main__"] = module
    sys.argv = [argv0, *map(str, argv)]
    try:
        exec(head, module.__dict__)
        between(module.__dict__)
        if tail is not None:
            exec(tail, module.__dict__)
    except SystemExit as stop:
        if stop.code not in (None, 0):
            raise
    finally:
        sys.argv = saved_argv
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        else:
            sys.modules.pop("__main__", None)
