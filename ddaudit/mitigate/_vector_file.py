"""One on-disk form for per-sample vectors (KDE weights, pseudo-groups).

``{KEY: (N,) tensor, "settings", "dataset"[, "labels", "recovery"]}`` in the
dataset's training order, read back with ``weights_only=True``. Each kind of
file is a :class:`VectorFile` that names its key, its dtype and its messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ddaudit.errors import ConfigError, InputError


#: Saving over an existing file without ``force``, whatever the kind of file.
EXISTS_MESSAGE = "{path} already exists; pass --force to overwrite it."


@dataclass(frozen=True)
class VectorFile:
    """A kind of per-sample vector file: its payload key, float (weights) or integer (groups), and the
    command that writes it (named in the message when the file is missing)."""

    key: str
    floating: bool
    written_by: str

    @property
    def exists_message(self) -> str:
        return EXISTS_MESSAGE

    @property
    def missing_message(self) -> str:
        return f"{self.key} file {{path}} does not exist; write it with `{self.written_by}`."

    @property
    def content_message(self) -> str:
        dtype = "float" if self.floating else "integer"
        return f"{self.key} file {{path}} is not a ddaudit {self.key} file (a dict with a 1-D {dtype} '{self.key}' tensor)."

    def save(
        self,
        path: str | Path,
        vector: torch.Tensor,
        *,
        settings: dict,
        dataset: str,
        labels: torch.Tensor | None = None,
        recovery: dict | None = None,
        force: bool = False,
    ) -> Path:
        """Write ``vector`` (float32 or int64 on CPU) with its ``settings`` and ``dataset`` name.

        ``labels`` (the training labels, stored as int64) let a reader check that
        its training set has the same order; ``recovery`` records how well true
        groups were recovered, when they were known. An existing file is
        overwritten only with ``force``.
        """
        path = Path(path)
        if path.exists() and not force:
            raise ConfigError(self.exists_message.format(path=path))
        vector = vector.detach().cpu()
        payload = {self.key: vector.float() if self.floating else vector.long(), "settings": dict(settings), "dataset": dataset}
        if labels is not None:
            payload["labels"] = labels.detach().cpu().long()
        if recovery is not None:
            payload["recovery"] = dict(recovery)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, path)
        return path

    def load(self, path: str | Path) -> dict:
        """Read a file written by :meth:`save` (safely: ``weights_only=True``); the whole payload dict."""
        path = Path(path)
        if not path.is_file():
            raise InputError(self.missing_message.format(path=path))
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file is the same user error
            raise InputError(self.content_message.format(path=path)) from None
        vector = payload.get(self.key) if isinstance(payload, dict) else None
        if not isinstance(vector, torch.Tensor) or vector.dim() != 1 or vector.is_floating_point() != self.floating:
            raise InputError(self.content_message.format(path=path))
        return payload
