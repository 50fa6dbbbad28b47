"""A supervised-contrastive surrogate whose embedding space exposes bias clusters.

Cui et al. estimate densities in the embedding of a network trained with the
supervised-contrastive (SupCon) loss of Khosla et al. (2020). Trained on biased
data, such a network leans on the shortcut feature (colour, background), so
bias-aligned samples of a class form one dense cluster and bias-conflicting
ones fall outside it: exactly what the KDE weights and pseudo-groups need.

The backbone is any evaluator from :func:`ddaudit.evaluate.create_model` (its
``.embed``), followed by a two-layer projection head; embeddings are the
L2-normalised head outputs, the space the SupCon loss shapes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ddaudit.devices import resolve_device
from ddaudit.errors import ConfigError, InputError

ERR_TEMPERATURE = "temperature must be a positive number; got {value!r}."
ERR_FEATURES = "features must be (N, D) and labels (N,) with the same N; got {features} and {labels}."
ERR_IMAGES = "images must be a float tensor (N, C, H, W) with labels (N,); got {images} and {labels}."
ERR_SETTING = "surrogate setting {name}={value!r} must be a positive number (a whole number for sizes and epochs)."


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Supervised-contrastive loss (Khosla et al. 2020, the "L_out" form).

    For L2-normalised features ``z`` and anchors ``i`` with positives
    ``P(i) = {p != i : y_p = y_i}`` and candidates ``A(i) = {a != i}``::

        L = mean_i  -1/|P(i)| * sum_{p in P(i)} log( exp(z_i.z_p / t) / sum_{a in A(i)} exp(z_i.z_a / t) )

    Anchors without a positive are left out of the mean.
    """
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ConfigError(ERR_TEMPERATURE.format(value=temperature))
    if features.dim() != 2 or labels.dim() != 1 or features.shape[0] != labels.shape[0]:
        raise InputError(ERR_FEATURES.format(features=tuple(features.shape), labels=tuple(labels.shape)))
    n = features.shape[0]
    logits = features @ features.T / temperature
    self_mask = torch.eye(n, dtype=torch.bool, device=features.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (labels[:, None] == labels[None, :]) & ~self_mask
    n_pos = positives.sum(dim=1)
    has_pos = n_pos > 0
    pos_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1)
    per_anchor = -pos_log_prob[has_pos] / n_pos[has_pos]
    if per_anchor.numel() == 0:
        return features.sum() * 0.0
    return per_anchor.mean()


class SupConSurrogate(nn.Module):
    """Backbone (``.embed``) plus projection head; ``forward`` returns unit-norm embeddings."""

    def __init__(
        self, backbone: nn.Module, feature_dim: int, head_dim: int, proj_dim: int, generator: torch.Generator
    ):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(
            nn.Linear(feature_dim, head_dim), nn.ReLU(inplace=True), nn.Linear(head_dim, proj_dim)
        )
        for layer in self.head:
            if isinstance(layer, nn.Linear):
                bound = 1.0 / math.sqrt(layer.in_features)
                nn.init.uniform_(layer.weight, -bound, bound, generator=generator)
                nn.init.uniform_(layer.bias, -bound, bound, generator=generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.head(self.backbone.embed(x)), dim=1)


@dataclass(frozen=True)
class SurrogateSettings:
    """Everything that determines a trained surrogate; saved next to the weights it produced."""

    model: str = "ConvNet"
    epochs: int = 10
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.1
    head_dim: int = 512
    proj_dim: int = 128
    max_shift: float = 0.125
    max_scale: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "head_dim", "proj_dim", "lr", "temperature"):
            value = getattr(self, name)
            kinds = int if name in ("epochs", "batch_size", "head_dim", "proj_dim") else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds) or not value > 0:
                raise ConfigError(ERR_SETTING.format(name=name, value=value))

    def to_dict(self) -> dict:
        return asdict(self)


def random_affine_views(x: torch.Tensor, generator: torch.Generator, max_shift: float, max_scale: float) -> torch.Tensor:
    """Per-sample random translation and zoom; colours are left alone so the bias stays visible."""
    n = x.shape[0]
    scale = 1.0 + (torch.rand(n, generator=generator) * 2 - 1) * max_scale
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * (2 * max_shift)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = scale
    theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _check_images(images: torch.Tensor, labels: torch.Tensor) -> None:
    if (
        not isinstance(images, torch.Tensor)
        or images.dim() != 4
        or not images.is_floating_point()
        or labels.dim() != 1
        or images.shape[0] != labels.shape[0]
    ):
        raise InputError(ERR_IMAGES.format(images=tuple(images.shape), labels=tuple(labels.shape)))


def build_surrogate(settings: SurrogateSettings, channel: int, num_classes: int, im_size: tuple[int, int]) -> SupConSurrogate:
    """A freshly initialised surrogate, identical for identical settings."""
    from ddaudit.evaluate import create_model

    backbone = create_model(settings.model, channel, num_classes, tuple(im_size), seed=settings.seed)
    with torch.no_grad():
        feature_dim = backbone.embed(torch.zeros(2, channel, *im_size)).shape[1]
    generator = torch.Generator().manual_seed(settings.seed + 1)
    return SupConSurrogate(backbone, feature_dim, settings.head_dim, settings.proj_dim, generator)


def train_surrogate(
    images: torch.Tensor,
    labels: torch.Tensor,
    settings: SurrogateSettings = SurrogateSettings(),
    *,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[int, int], None] | None = None,
) -> SupConSurrogate:
    """Train a SupCon surrogate on *images* (N, C, H, W) with class *labels* (N,).

    Each step draws a batch (seeded permutation), makes two random-affine views
    of it and minimises :func:`supcon_loss` with Adam. *progress* is called as
    ``progress(done_steps, total_steps)``. The model is returned in eval mode on
    *device*.
    """
    _check_images(images, labels)
    device = torch.device(resolve_device(device))
    num_classes = int(labels.max()) + 1 if num_classes is None else num_classes
    model = build_surrogate(settings, images.shape[1], num_classes, tuple(images.shape[2:])).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    generator = torch.Generator().manual_seed(settings.seed)
    n = images.shape[0]
    batch_size = min(settings.batch_size, n)
    steps_per_epoch = max(1, n // batch_size)
    total = settings.epochs * steps_per_epoch
    model.train()
    done = 0
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        for step in range(steps_per_epoch):
            index = order[step * batch_size : (step + 1) * batch_size]
            x = images[index].to(device)
            y = labels[index].to(device)
            views = torch.cat(
                [
                    random_affine_views(x, generator, settings.max_shift, settings.max_scale),
                    random_affine_views(x, generator, settings.max_shift, settings.max_scale),
                ]
            )
            loss = supcon_loss(model(views), torch.cat([y, y]), settings.temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            done += 1
            if progress is not None:
                progress(done, total)
    return model.eval()


@torch.no_grad()
def embed_images(
    model: SupConSurrogate, images: torch.Tensor, *, batch_size: int = 1024, device: str | torch.device | None = None
) -> torch.Tensor:
    """Unit-norm surrogate embeddings (N, proj_dim) of *images*, in their order, on CPU."""
    device = next(model.parameters()).device if device is None else torch.device(resolve_device(device))
    model = model.to(device).eval()
    chunks = [model(images[i : i + batch_size].to(device)).cpu() for i in range(0, images.shape[0], batch_size)]
    if not chunks:
        return torch.zeros(0, model.head[-1].out_features)
    return torch.cat(chunks)


def surrogate_embeddings(
    images: torch.Tensor, labels: torch.Tensor, settings: SurrogateSettings = SurrogateSettings(), **options: Any
) -> torch.Tensor:
    """Train a surrogate on the training set and return its embeddings (N, proj_dim), in dataset order.

    ``options`` are those of :func:`train_surrogate` (``num_classes``, ``device``, ``progress``).
    """
    model = train_surrogate(images, labels, settings, **options)
    return embed_images(model, images)
