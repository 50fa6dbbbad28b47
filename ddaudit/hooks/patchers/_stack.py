"""Every patch a patcher makes, undone in reverse order however the run ends."""

from __future__ import annotations

import types
from typing import Any, Callable

_MISSING = object()


def qualified_name(owner: Any, attribute: str) -> str:
    """``module.attr`` / ``Class.attr``: how a patch is named in the run summary."""
    if isinstance(owner, types.ModuleType):
        prefix = owner.__name__
    elif isinstance(owner, type):
        prefix = f"{owner.__module__}.{owner.__qualname__}"
    elif isinstance(owner, dict):
        prefix = "<namespace>"
    else:
        prefix = type(owner).__name__ + " instance"
    return f"{prefix}.{attribute}"


class PatchStack:
    """Attribute and item replacements with their undo actions.

    Each ``replace`` records the value it overwrote (or that there was none);
    :meth:`close` restores them last-in first-out and runs every undo action even
    when one fails, so an exception in the third-party script cannot leave torch,
    numpy or ``time`` patched. ``names`` lists what was patched, in order.
    """

    def __init__(self) -> None:
        self._undo: list[Callable[[], None]] = []
        self.names: list[str] = []

    def replace(self, owner: Any, attribute: str, value: Any, *, name: str | None = None) -> Any:
        """Set ``owner.attribute = value``; return the value it had (looked up normally)."""
        own = vars(owner)
        saved = own.get(attribute, _MISSING)
        previous = getattr(owner, attribute, None)
        setattr(owner, attribute, value)

        def undo() -> None:
            if saved is _MISSING:
                if attribute in vars(owner):
                    delattr(owner, attribute)
            else:
                setattr(owner, attribute, saved)

        self._undo.append(undo)
        self.names.append(name or qualified_name(owner, attribute))
        return previous

    def replace_item(self, mapping: dict, key: Any, value: Any, *, name: str) -> Any:
        """Set ``mapping[key] = value`` (a namespace or a lookup table); restore it later."""
        saved = mapping.get(key, _MISSING)
        mapping[key] = value

        def undo() -> None:
            if saved is _MISSING:
                mapping.pop(key, None)
            else:
                mapping[key] = saved

        self._undo.append(undo)
        self.names.append(name)
        return None if saved is _MISSING else saved

    def callback(self, undo: Callable[[], None]) -> None:
        """Run *undo* when the stack closes (restoring state that is not an attribute)."""
        self._undo.append(undo)

    @property
    def open(self) -> bool:
        return bool(self._undo)

    def close(self) -> None:
        """Undo everything, newest first; re-raise the first failure after trying all."""
        failures: list[BaseException] = []
        while self._undo:
            undo = self._undo.pop()
            try:
                undo()
            except BaseException as error:  # noqa: BLE001 - keep restoring the rest
                failures.append(error)
        if failures:
            raise failures[0]

    def __enter__(self) -> "PatchStack":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
