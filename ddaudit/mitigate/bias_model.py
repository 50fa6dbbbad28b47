"""A deliberately biased classifier: the surrogate that exposes a shortcut without group labels.

A network trained on biased data learns the easy shortcut (colour, background)
long before the intended feature (shape). Learning from Failure (Nam et al.,
2020) makes that explicit with the generalized cross-entropy
``GCE(p, y) = (1 - p_y^q) / q``, whose gradient is cross-entropy's multiplied by
``p_y^q``: samples the model already gets right pull harder, so the model keeps
to the shortcut. Stopped early, its logits are a function of the bias
attribute: inside a class, bias-aligned samples share one logit pattern and each
bias-conflicting colour another (the model calls a red 7 a "0" because 0s are
mostly red). That is the embedding KDE weights and pseudo-groups need, and it is
found with class labels only.

Stopping rule (label-free): train at least two epochs and stop at the first
epoch whose training accuracy (class labels, the whole training set, no
augmentation) rose by less than ``tol`` over the previous epoch: the majority
is fit and the minority not yet memorised. Measured on the embedded presets
(4,000 digits, 5 % conflicting, ConvNetW32, GCE q = 0.7): training accuracy
0.946 / 0.952 / 0.953 after epochs 1-3 (cmnist-fg; stops after 3) and
0.954 / 0.953 (cmnist-bg; stops after 2), with KDE-on-logits AUC 0.99-1.00 for
conflicting vs aligned samples, where a SupCon surrogate trained 20 epochs
reaches 0.87 because contrastive training pulls each class together whatever
its colour. ``epochs`` fixes the count instead (``stop="fixed"``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ddaudit.errors import ConfigError, InputError

LOSSES = ("gce", "ce")
STOPS = ("plateau", "fixed")

ERR_SETTING = "bias-model setting {name}={value!r} must be a positive number (a whole number for sizes and epochs)."
ERR_LOSS = "bias-model loss must be 'gce' or 'ce'; got {value!r}."
ERR_STOP = "bias-model stop must be 'plateau' or 'fixed'; got {value!r}."
ERR_Q = "GCE q must lie in (0, 1]; got {value!r}."
ERR_IMAGES = "images must be a float tensor (N, C, H, W) with labels (N,); got {images} and {labels}."


def gce_loss(logits: torch.Tensor, labels: torch.Tensor, q: float = 0.7) -> torch.Tensor:
    """Generalized cross-entropy (Zhang & Sabuncu 2018), mean over the batch: ``(1 - p_y^q) / q``."""
    if not (isinstance(q, (int, float)) and 0 < q <= 1):
        raise ConfigError(ERR_Q.format(value=q))
    p = torch.softmax(logits, dim=1).gather(1, labels[:, None]).squeeze(1).clamp_min(1e-12)
    return ((1.0 - p**q) / q).mean()


@dataclass(frozen=True)
class BiasModelSettings:
    """Everything that determines a trained biased classifier."""

    model: str = "ConvNetW32"
    loss: str = "gce"
    q: float = 0.7
    stop: str = "plateau"
    epochs: int = 5
    tol: float = 0.005
    batch_size: int = 256
    lr: float = 1e-3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise ConfigError(ERR_LOSS.format(value=self.loss))
        if self.stop not in STOPS:
            raise ConfigError(ERR_STOP.format(value=self.stop))
        if not (isinstance(self.q, (int, float)) and not isinstance(self.q, bool) and 0 < self.q <= 1):
            raise ConfigError(ERR_Q.format(value=self.q))
        for name in ("epochs", "batch_size", "lr", "tol"):
            value = getattr(self, name)
            kinds = int if name in ("epochs", "batch_size") else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
                raise ConfigError(ERR_SETTING.format(name=name, value=value))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class BiasModelFit:
    """The trained classifier (eval mode), its logits on the training set and the per-epoch training accuracy."""

    model: nn.Module
    logits: torch.Tensor
    train_accuracy: list[float] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return len(self.train_accuracy)

    def per_sample_loss(self, labels: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each training sample: high on the samples the shortcut gets wrong (JTT's error set)."""
        return F.cross_entropy(self.logits, labels.to(self.logits.device), reduction="none")


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, batch_size: int = 1000) -> torch.Tensor:
    """Logits (N, classes) of *images*, on CPU, in their order."""
    device = next(model.parameters()).device
    chunks = [model(images[i : i + batch_size].to(device)).float().cpu() for i in range(0, images.shape[0], batch_size)]
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def train_bias_model(
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: BiasModelSettings = BiasModelSettings(),
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> BiasModelFit:
    """Train a biased classifier on *images* (N, C, H, W) with class *labels* (N,).

    Adam, seeded shuffles, no augmentation (it would only slow the shortcut).
    *progress* is called as ``progress(done_epochs, max_epochs)``; with the
    plateau rule the last call jumps to the maximum.
    """
    from ddaudit.evaluate import create_model
    from ddaudit.devices import resolve_device

    if (
        not isinstance(images, torch.Tensor) or images.dim() != 4 or not images.is_floating_point()
        or not isinstance(labels, torch.Tensor) or labels.dim() != 1 or images.shape[0] != labels.shape[0]
    ):
        shapes = [tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__ for t in (images, labels)]
        raise InputError(ERR_IMAGES.format(images=shapes[0], labels=shapes[1]))
    device = resolve_device(device)
    labels = labels.long()
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    model = create_model(settings.model, images.shape[1], num_classes, tuple(images.shape[2:]), seed=settings.seed).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    generator = torch.Generator().manual_seed(settings.seed)
    n = images.shape[0]
    batch_size = min(settings.batch_size, n)
    accuracy: list[float] = []
    logits = torch.zeros(0)
    for epoch in range(1, settings.epochs + 1):
        model.train()
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            out = model(images[index].to(device))
            target = labels[index].to(device)
            loss = gce_loss(out, target, settings.q) if settings.loss == "gce" else F.cross_entropy(out, target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        logits = predict_logits(model, images)
        accuracy.append(float((logits.argmax(1) == labels).float().mean()))
        done = settings.stop == "plateau" and epoch >= 2 and accuracy[-1] - accuracy[-2] < settings.tol
        if progress is not None:
            progress(settings.epochs if done else epoch, settings.epochs)
        if done:
            break
    return BiasModelFit(model=model.eval(), logits=logits, train_accuracy=accuracy)
