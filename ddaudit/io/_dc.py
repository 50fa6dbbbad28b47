"""DatasetCondensation (DC, DSA, DM) result files.

``main.py``/``main_DM.py`` rewrite ``res_<method>_<dataset>_<model>_<ipc>ipc.pt``
after every experiment as ``{'data': [[images, labels], ...], 'accs_all_exps':
{model: [accuracies]}}``; the images are in normalised space.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ddaudit.errors import InputError
from ddaudit.io import _messages as msg
from ddaudit.io._convert import make_synthetic_set
from ddaudit.io._files import is_torch_file, load_torch
from ddaudit.io._registry import register_reader, resolve_index
from ddaudit.io._types import SyntheticSet

_RESULT_NAME = re.compile(
    r"^res_(?P<method>[^_]+)_(?P<dataset>.+)_(?P<model>[^_]+)_(?P<ipc>\d+)ipc\.pt$"
)


def _is_dc_result(path: Path) -> bool:
    if not is_torch_file(path):
        return False
    content = load_torch(path)
    return isinstance(content, dict) and isinstance(content.get("data"), (list, tuple))


@register_reader("dc", detect=_is_dc_result, priority=30)
def read_dc(path: Path, index: int) -> SyntheticSet:
    """DatasetCondensation res_<method>_<dataset>_<model>_<ipc>ipc.pt (one set per experiment)."""
    content = load_torch(path)
    if not isinstance(content, dict) or not isinstance(content.get("data"), (list, tuple)):
        raise InputError(
            msg.WRONG_STRUCTURE.format(
                path=path,
                format="DatasetCondensation result",
                problem="expected a dict whose 'data' is a list of [images, labels] experiments",
            )
        )
    experiments = content["data"]
    if not experiments:
        raise InputError(
            msg.WRONG_STRUCTURE.format(
                path=path,
                format="DatasetCondensation result",
                problem="its 'data' list is empty (no experiment finished)",
            )
        )
    position = resolve_index(index, len(experiments), path, "experiments")
    pair = experiments[position]
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        raise InputError(
            msg.WRONG_STRUCTURE.format(
                path=path,
                format="DatasetCondensation result",
                problem=f"experiment {position} is not an [images, labels] pair",
            )
        )
    meta: dict[str, Any] = {
        "space_hint": "normalized",
        "experiment": position,
        "experiments": len(experiments),
    }
    meta.update(_name_fields(path))
    accuracies = _reported_accuracies(content.get("accs_all_exps"))
    if accuracies:
        meta["accs_all_exps"] = accuracies
    return make_synthetic_set(
        pair[0],
        pair[1],
        format="dc",
        path=str(path),
        where=f"{path} experiment {position}",
        meta=meta,
    )


def _name_fields(path: Path) -> dict[str, Any]:
    """Method, dataset, model and IPC as the file name states them."""
    match = _RESULT_NAME.match(path.name)
    if match is None:
        return {}
    fields: dict[str, Any] = match.groupdict()
    fields["ipc"] = int(fields["ipc"])
    return fields


def _reported_accuracies(value: Any) -> dict[str, list[float]]:
    """The distiller's own test accuracies, kept for comparison (best effort)."""
    if not isinstance(value, dict):
        return {}
    accuracies: dict[str, list[float]] = {}
    for model, values in value.items():
        try:
            accuracies[str(model)] = [float(v) for v in values]
        except (TypeError, ValueError):
            continue
    return accuracies
