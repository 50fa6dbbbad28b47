"""The group classifier: a small network that predicts the protected group of an image.

Trained once on the real training images, with (class, group) cells drawn equally
often, so the class an image shows tells the network nothing about its group:
in biased data (90 % of class c in group c) a network trained on the raw
frequencies could read the digit's shape and answer "group c" without looking at
the colour, and would then call every synthetic image of class c majority-group.
Distilled images carry high-frequency noise that real images lack, so training
adds Gaussian noise of a random strength (up to ``noise`` standard deviations of
the normalised pixels) to each image: without it, noisy orange digits distilled
by DM were read as red, green or blue.

The trained weights are cached on disk, keyed by a content hash of the real data
(pixels, classes, groups of both splits) and the training settings, so a second
probe of another set on the same data costs only the predictions.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ddaudit import hashing
from torch import nn

from ddaudit.data import GroupTensors
from ddaudit.errors import ConfigError, InputError
from ddaudit.reproducibility import numerics_key

#: Bumped whenever training changes, so old cache entries are not reused.
CLASSIFIER_VERSION = 2
CACHE_ENV = "DDAUDIT_CACHE_DIR"

#: progress(done_steps, total_steps)
StepProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ClassifierSettings:
    """How the group classifier is trained (part of the cache key)."""

    width: int = 16
    depth: int = 3
    epochs: int = 2
    batch_size: int = 128
    lr: float = 2e-3
    noise: float = 1.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("width", "depth", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"probe classifier setting {name} must be a positive integer, got {value!r}")
        if not self.lr > 0:
            raise ConfigError(f"probe classifier setting lr must be positive, got {self.lr!r}")
        if not self.noise >= 0:
            raise ConfigError(f"probe classifier setting noise must be >= 0, got {self.noise!r}")


def default_cache_dir() -> Path:
    """``$DDAUDIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/ddaudit``, else ``~/.cache/ddaudit``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ddaudit"


def build_classifier(channel: int, num_groups: int, im_size: tuple[int, int], settings: ClassifierSettings) -> nn.Module:
    """DC's ConvNet, narrow, with batch norm: instance norm would erase global
    intensity (white vs grey strokes differ only in scale), which can be the group."""
    from ddaudit.evaluate.models import ConvNet

    with torch.random.fork_rng(devices=[]):  # seeded initialisation without touching the caller's RNG
        torch.manual_seed(settings.seed)
        return ConvNet(channel, num_groups, tuple(im_size), width=settings.width, depth=settings.depth,
                       norm="batchnorm", name="probe classifier")


def content_hash(*parts: GroupTensors | None, extra: dict | None = None) -> str:
    """SHA-256 over the parts' pixels, classes and groups (a missing part named as such) and *extra* settings."""
    data = [None if part is None else hashing.content_hash(part.x, part.y, part.a) for part in parts]
    return hashing.payload_hash({"data": data, "extra": extra or {}})


def cell_balanced_weights(y: torch.Tensor, a: torch.Tensor, num_groups: int) -> torch.Tensor:
    """Sampling weight 1 / #(class, group) per row: every non-empty cell is drawn equally often."""
    cell = y * num_groups + a
    counts = torch.bincount(cell)
    return 1.0 / counts[cell].double()


def train_group_classifier(
    train: GroupTensors,
    *,
    num_groups: int,
    channel: int,
    im_size: tuple[int, int],
    settings: ClassifierSettings,
    device: str = "cpu",
    progress: StepProgress | None = None,
) -> nn.Module:
    """Train on the real training rows (cell-balanced draws with replacement, Gaussian-noise
    augmentation, Adam)."""
    if len(train) == 0:
        raise InputError("the real training set is empty: the probe needs it to learn the groups")
    if int(torch.unique(train.a).numel()) < 2:
        raise InputError("the real training set holds a single group: there is nothing for the probe to tell apart")
    model = build_classifier(channel, num_groups, im_size, settings).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    weights = cell_balanced_weights(train.y, train.a, num_groups)
    steps = settings.epochs * max(1, len(train) // settings.batch_size)
    draws = torch.multinomial(weights, steps * settings.batch_size, replacement=True, generator=generator)
    model.train()
    for step in range(steps):
        rows = draws[step * settings.batch_size:(step + 1) * settings.batch_size]
        x, a = train.x[rows], train.a[rows]
        x = add_noise(x, settings.noise, generator)
        x, a = x.to(device), a.to(device)
        loss = F.cross_entropy(model(x), a)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if progress is not None and ((step + 1) % 10 == 0 or step + 1 == steps):
            progress(step + 1, steps)
    model.eval()
    return model


def add_noise(x: torch.Tensor, noise: float, generator: torch.Generator) -> torch.Tensor:
    """Gaussian pixel noise of a random strength in [0, noise) per image (the training augmentation)."""
    if noise <= 0:
        return x
    strength = torch.rand(len(x), 1, 1, 1, generator=generator) * noise
    return x + strength * torch.randn(x.shape, generator=generator)


@torch.no_grad()
def predict_proba(model: nn.Module, x: torch.Tensor, *, device: str = "cpu", batch_size: int = 1024) -> torch.Tensor:
    """Softmax group probabilities ``(N, G)`` on CPU."""
    model.eval()
    out = [F.softmax(model(x[i:i + batch_size].to(device)).float(), dim=1).cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 0)


@torch.no_grad()
def embed_features(model: nn.Module, x: torch.Tensor, *, device: str = "cpu", batch_size: int = 1024) -> torch.Tensor:
    """Penultimate features ``(N, D)`` on CPU (what the mixture weights are read in)."""
    model.eval()
    out = [model.embed(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)]
    return torch.cat(out) if out else torch.zeros(0, 0)


@dataclass
class CellFeatures:
    """Penultimate features of (at most ``per_cell``) real training rows per (class, group) cell."""

    features: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    num_classes: int
    num_groups: int

    @property
    def cells(self) -> np.ndarray:
        return self.labels * self.num_groups + self.groups

    def means(self) -> np.ndarray:
        """Mean feature of each cell, ``(C, G, D)``; NaN rows for empty cells."""
        means = np.full((self.num_classes, self.num_groups, self.features.shape[1]), np.nan)
        cells = self.cells
        for value in np.unique(cells).tolist():
            means[value // self.num_groups, value % self.num_groups] = self.features[cells == value].mean(axis=0)
        return means


def real_cell_features(
    model: nn.Module,
    train: GroupTensors,
    *,
    num_classes: int,
    num_groups: int,
    per_cell: int = 512,
    seed: int = 0,
    device: str = "cpu",
) -> CellFeatures:
    """Features of a seeded draw of at most *per_cell* rows per real cell, so large training sets
    cost one bounded pass."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=generator)
    cell = (train.y * num_groups + train.a)[order]
    keep = torch.zeros(len(order), dtype=torch.bool)
    for value in torch.unique(cell):
        keep[torch.nonzero(cell == value).flatten()[:per_cell]] = True
    rows = order[keep]
    features = embed_features(model, train.x[rows], device=device).double().numpy()
    return CellFeatures(features, train.y[rows].numpy(), train.a[rows].numpy(), num_classes, num_groups)


def real_group_means(model: nn.Module, train: GroupTensors, *, num_classes: int, num_groups: int,
                     per_cell: int = 512, seed: int = 0, device: str = "cpu") -> np.ndarray:
    """Mean feature of each real (class, group) cell, ``(C, G, D)``; NaN rows for empty cells."""
    return real_cell_features(model, train, num_classes=num_classes, num_groups=num_groups, per_cell=per_cell,
                              seed=seed, device=device).means()


@dataclass
class TrainedClassifier:
    """A group classifier with what the report says about it."""

    model: nn.Module
    key: str
    cached: bool
    seconds: float
    settings: ClassifierSettings
    cache_path: str | None


def load_or_train(
    train: GroupTensors,
    test: GroupTensors,
    *,
    num_groups: int,
    channel: int,
    im_size: tuple[int, int],
    settings: ClassifierSettings,
    key_extra: dict,
    cache_dir: str | Path | None,
    device: str = "cpu",
    progress: StepProgress | None = None,
) -> TrainedClassifier:
    """The classifier from the cache when the same data and settings trained one, else trained now.

    ``cache_dir=None`` disables the cache. Cached weights are read with
    ``torch.load(weights_only=True)``; an unreadable entry is retrained and replaced.
    """
    key = content_hash(train, test, extra={**key_extra, "settings": asdict(settings), "version": CLASSIFIER_VERSION,
                                           "num_groups": num_groups, **numerics_key()})
    path = None if cache_dir is None else Path(cache_dir) / f"probe-classifier-{key[:32]}.pt"
    started = time.perf_counter()
    if path is not None and path.exists():
        model = build_classifier(channel, num_groups, im_size, settings)
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            model.to(device).eval()
            return TrainedClassifier(model, key, True, time.perf_counter() - started, settings, str(path))
        except Exception:  # noqa: BLE001 - a damaged cache entry is retrained, not fatal
            pass
    model = train_group_classifier(train, num_groups=num_groups, channel=channel, im_size=im_size,
                                   settings=settings, device=device, progress=progress)
    seconds = time.perf_counter() - started
    if path is not None:
        _save_atomic(model, path)
    return TrainedClassifier(model, key, False, seconds, settings, None if path is None else str(path))


def _save_atomic(model: nn.Module, path: Path) -> None:
    """Write the cache entry through a temporary file, so a crash leaves no half-written weights."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        os.replace(tmp, path)
    except OSError as error:
        raise ConfigError(f"cannot write the probe cache in {path.parent} ({error.strerror}); pass --cache-dir or --no-cache") from None
