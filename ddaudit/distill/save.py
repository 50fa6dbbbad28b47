"""Write synthetic sets in DatasetCondensation's file format, so every DC-aware tool reads them.

The file is ``{'data': [[images, labels]], 'accs_all_exps': {...}}`` with CPU
float32 images ``(N, C, H, W)`` (in the real data's normalised space) and int64
labels ``(N,)``: tensors, lists and a dict only, so it loads with
``torch.load(path, weights_only=True)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ddaudit.errors import ConfigError, InputError

ERR_EXISTS = "{path} already exists; pass force=True (--force) to overwrite it or choose another path"
ERR_IMAGES = "images must be a 4-D tensor (N, C, H, W), got shape {shape}"
ERR_LABELS = "labels must be a 1-D integer tensor with one label per image, got shape {shape} for {n} images"
ERR_METHOD = "saving into a directory needs method= (e.g. 'DM') to name the file res_<method>_<dataset>_<model>_<ipc>ipc.pt"


def dc_filename(method: str, dataset: str, model: str, ipc: int) -> str:
    """DatasetCondensation's file name: ``res_<method>_<dataset>_<model>_<ipc>ipc.pt``."""
    return f"res_{method}_{dataset}_{model}_{ipc}ipc.pt"


def save_dc_format(
    path: str | Path,
    images: torch.Tensor,
    labels: torch.Tensor,
    method: str | None = None,
    *,
    dataset: str = "custom",
    model: str = "ConvNet",
    accs: dict | None = None,
    force: bool = False,
) -> Path:
    """Save one experiment's synthetic set; return the file written.

    *path* is the file, or an existing directory in which the DC file name is built
    from *method*, *dataset*, *model* and the images per class. An existing file is
    refused unless ``force=True``. *accs* becomes ``accs_all_exps``
    (``{model_name: [accuracy, ...]}`` in DC).
    """
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise InputError(ERR_IMAGES.format(shape=tuple(getattr(images, "shape", ()))))
    n = images.shape[0]
    if (
        not isinstance(labels, torch.Tensor)
        or labels.ndim != 1
        or labels.shape[0] != n
        or labels.is_floating_point()
    ):
        raise InputError(ERR_LABELS.format(shape=tuple(getattr(labels, "shape", ())), n=n))
    path = Path(path)
    if path.is_dir():
        if not method:
            raise ConfigError(ERR_METHOD)
        counts = torch.bincount(labels.long().cpu())
        ipc = int(counts[counts > 0].max()) if n else 0
        path = path / dc_filename(method, dataset, model, ipc)
    if path.exists() and not force:
        raise InputError(ERR_EXISTS.format(path=path))
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "data": [[images.detach().to("cpu", torch.float32).contiguous(), labels.detach().to("cpu", torch.long)]],
        "accs_all_exps": dict(accs or {}),
    }
    partial = path.with_name(path.name + ".partial")
    torch.save(payload, partial)
    os.replace(partial, path)
    return path
