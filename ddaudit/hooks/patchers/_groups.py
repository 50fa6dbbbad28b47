"""Where the patched code learns the protected group of each training row.

Two sources, both index-aligned with the training set the script iterates
(``dst_train[i]`` is row ``i``):

- a per-row file (``--groups FILE``: ``.pt``, ``.npy``, ``.txt``/``.csv`` with one
  integer per row), whose length is checked against the script's own dataset when
  its ``get_dataset`` is called;
- a ddaudit dataset preset injected through the codebase's ``get_dataset``, so the
  unmodified script trains on it; its groups come with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ddaudit.data import RealData, intersection_index, load_real
from ddaudit.errors import InputError

ERR_VECTOR_MISSING = "{what} file {path} does not exist; give one value per training row of the script"
ERR_VECTOR_SUFFIX = "{what} file {path} has an unknown type; use .pt, .npy, .txt or .csv with one value per training row"
ERR_VECTOR_UNREADABLE = "cannot read {what} file {path} ({why}); save a 1-D tensor with torch.save or numpy.save"
ERR_VECTOR_SHAPE = "{what} file {path} holds shape {shape}; it must be 1-D, one value per training row"
ERR_TABLE_SHAPE = ("{what} file {path} holds shape {shape}; it must be (N,), one group id per training row, or "
                   "(N, K), one row of K attribute values per training row")
ERR_GROUP_VALUES = "groups file {path} must hold non-negative integers (the group id of each training row)"
ERR_LENGTH = (
    "{what} has {got} rows but the script's training set has {expected}; "
    "give one value per row of the dataset its get_dataset returns, in the same order"
)
ERR_WEIGHTS_LENGTH = "weights have {got} rows but the groups have {expected}; both must cover every training row"


def load_vector(path: str | Path, what: str, table: bool = False) -> np.ndarray:
    """Read a 1-D per-row vector from ``.pt`` (``weights_only``), ``.npy`` or text (*table*: or an ``(N, K)`` table)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(ERR_VECTOR_MISSING.format(what=what, path=path))
    suffix = path.suffix.lower()
    try:
        if suffix in (".pt", ".pth"):
            content = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(content, dict) and what in content:
                content = content[what]
            values = content.numpy() if isinstance(content, torch.Tensor) else np.asarray(content)
        elif suffix == ".npy":
            values = np.load(path, allow_pickle=False)
        elif suffix in (".txt", ".csv"):
            values = np.loadtxt(path, delimiter="," if suffix == ".csv" else None, ndmin=1)
        else:
            raise InputError(ERR_VECTOR_SUFFIX.format(what=what, path=path))
    except InputError:
        raise
    except Exception as error:  # noqa: BLE001 - any reader failure is a bad input file
        why = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise InputError(ERR_VECTOR_UNREADABLE.format(what=what, path=path, why=why)) from None
    values = np.asarray(values)
    if table and values.ndim == 2 and values.shape[1] >= 1:
        return values
    if values.ndim != 1:
        message = ERR_TABLE_SHAPE if table else ERR_VECTOR_SHAPE
        raise InputError(message.format(what=what, path=path, shape=tuple(values.shape)))
    return values


ERR_GROUPS_FOR_PRESET = (
    "groups from {source} have {got} rows but preset {spec!r} has {expected} training rows; "
    "make them for the same preset and options (e.g. `ddaudit weights --real {spec} --pseudo-groups FILE`)"
)


def load_groups(path: str | Path) -> np.ndarray:
    """Group ids (int64) from a per-row file; an ``(N, K)`` file of several attributes' values gives
    their intersection (:func:`ddaudit.data.intersection_index`), so sync matches every combination."""
    values = load_vector(path, "groups", table=True)
    if values.dtype.kind == "f":
        if not np.all(np.isfinite(values)) or not np.all(values == np.round(values)):
            raise InputError(ERR_GROUP_VALUES.format(path=path))
    elif values.dtype.kind not in "iub":
        raise InputError(ERR_GROUP_VALUES.format(path=path))
    values = values.astype(np.int64)
    if values.size and values.min() < 0:
        raise InputError(ERR_GROUP_VALUES.format(path=path))
    if values.ndim == 2:  # several attributes: their intersection
        return values[:, 0] if values.shape[1] == 1 else intersection_index(values)
    return values


@dataclass
class GroupTable:
    """Per-training-row protected group, class label and optional weight.

    ``labels`` are filled from the script's own dataset when it is loaded (a
    preset brings them along); ``groups`` may be ``None`` in mode ``weights``
    without group labels.
    """

    groups: np.ndarray | None
    source: str
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None
    group_names: list[str] | None = None
    _class_groups: dict[int, list[int]] = field(default_factory=dict, repr=False)
    _groups_t: torch.Tensor | None = field(default=None, repr=False)
    _weights_t: torch.Tensor | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.groups is not None and self.weights is not None and len(self.weights) != len(self.groups):
            raise InputError(ERR_WEIGHTS_LENGTH.format(got=len(self.weights), expected=len(self.groups)))
        if self.groups is not None:
            self._groups_t = torch.as_tensor(self.groups, dtype=torch.long)
        if self.weights is not None:
            self._weights_t = torch.as_tensor(np.asarray(self.weights, dtype=np.float64), dtype=torch.float32)

    @property
    def size(self) -> int | None:
        for values in (self.groups, self.weights, self.labels):
            if values is not None:
                return len(values)
        return None

    def bind_labels(self, labels, what: str = "the group table") -> None:
        """Attach the class of every row, checking the lengths agree."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        expected = self.size
        if expected is not None and expected != len(labels):
            raise InputError(ERR_LENGTH.format(what=what, got=expected, expected=len(labels)))
        self.labels = labels
        self._class_groups = {}
        if self.groups is not None:
            for c in np.unique(labels):
                self._class_groups[int(c)] = sorted(int(g) for g in np.unique(self.groups[labels == c]))

    def class_groups(self, c: int) -> list[int]:
        """Groups that occur among class *c*'s training rows."""
        return self._class_groups.get(int(c), [])

    def class_of(self, indices: np.ndarray) -> int | None:
        """The class shared by all *indices*, ``None`` when unknown or mixed."""
        if self.labels is None or len(indices) == 0:
            return None
        classes = np.unique(self.labels[indices])
        return int(classes[0]) if classes.size == 1 else None

    def groups_of(self, indices, device=None) -> torch.Tensor | None:
        if self._groups_t is None:
            return None
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return self._groups_t[index].to(device) if device is not None else self._groups_t[index]

    def weights_of(self, indices, device=None) -> torch.Tensor | None:
        if self._weights_t is None:
            return None
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return self._weights_t[index].to(device) if device is not None else self._weights_t[index]


class PresetRows(torch.utils.data.Dataset):
    """``dataset[i] = (image, int label)`` over a preset split, as torchvision datasets answer.

    With ``groups`` the rows are ``(image, label, group)``, the shape FairDD and
    COBRA read (``dst_train[i][2]``, ``datum[2]`` in their metric code). Also
    exposes ``targets``, ``classes`` and ``nclass``, which codebases read directly
    (IDC's loaders, MTT's class maps).
    """

    def __init__(
        self, images: torch.Tensor, labels: torch.Tensor, class_names: list[str], groups: torch.Tensor | None = None
    ) -> None:
        self.images = images
        self.targets = [int(v) for v in labels.tolist()]
        self.classes = list(class_names)
        self.nclass = len(class_names)
        self.groups = None if groups is None else [int(v) for v in groups.tolist()]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        if self.groups is not None:
            return self.images[index], self.targets[index], self.groups[index]
        return self.images[index], self.targets[index]


@dataclass
class InjectedDataset:
    """A preset, loaded once, in the shapes the codebases' ``get_dataset`` return."""

    spec: str
    real: RealData

    @classmethod
    def load(cls, spec: str, options: dict | None = None) -> "InjectedDataset":
        real = load_real(spec, **(options or {}))
        if real.train is None:
            raise InputError(f"dataset preset {spec!r} has no training split; a distiller needs one")
        return cls(spec=spec, real=real)

    def table(self, weights: np.ndarray | None = None, *, groups: np.ndarray | None = None,
              source: str | None = None) -> GroupTable:
        """The preset's rows with its own groups, or with *groups* in their place (e.g. pseudo-groups)."""
        train = self.real.train
        if groups is not None and len(groups) != len(train):
            raise InputError(ERR_GROUPS_FOR_PRESET.format(source=source, got=len(groups), spec=self.spec,
                                                          expected=len(train)))
        table = GroupTable(
            groups=train.a.numpy().astype(np.int64) if groups is None else np.asarray(groups, dtype=np.int64),
            source=f"preset {self.spec}" if groups is None else f"{source} on preset {self.spec}",
            weights=weights,
            group_names=list(self.real.group_names) if groups is None else None,
        )
        table.bind_labels(train.y.numpy(), what="the weights")
        return table

    @property
    def mean(self) -> list[float]:
        return list(self.real.mean) if self.real.mean is not None else [0.0] * self.real.channel

    @property
    def std(self) -> list[float]:
        return list(self.real.std) if self.real.std is not None else [1.0] * self.real.channel

    def train_rows(self, *, raw: bool = False, groups: bool = False) -> PresetRows:
        train = self.real.train
        return self._rows(train.x, train.y, raw, train.a if groups else None)

    def test_rows(self, *, raw: bool = False, groups: bool = False) -> PresetRows:
        test = self.real.test
        return self._rows(test.x, test.y, raw, test.a if groups else None)

    def _rows(self, x: torch.Tensor, y: torch.Tensor, raw: bool, groups: torch.Tensor | None) -> PresetRows:
        if raw and self.real.mean is not None:
            mean = torch.tensor(self.mean).view(1, -1, 1, 1)
            std = torch.tensor(self.std).view(1, -1, 1, 1)
            x = x * std + mean
        return PresetRows(x, y, self.real.class_names, groups)

    def test_loader(self, batch_size: int = 256, *, groups: bool = False) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.test_rows(groups=groups), batch_size=batch_size, shuffle=False, num_workers=0
        )
