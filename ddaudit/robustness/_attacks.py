"""Perturbations in raw pixel space: L-infinity PGD and common corruptions.

A budget is a radius in raw [0, 1] pixels, whatever space the evaluators read:
``to_model`` maps raw pixels to their input (normalisation, ZCA), so the ball is
applied before normalisation (Madry et al. 2018: random start, signed steps,
projection). PGD is written here rather than taken from an attack library
because it must run through that map on ddaudit's own ensembles; it is twenty
lines. Corruptions follow Hendrycks & Dietterich (2019), CIFAR-10 severities.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torchvision.transforms.functional import gaussian_blur

Forward = Callable[[torch.Tensor], torch.Tensor]

#: name -> the parameter at severities 1, 3 and 5 (Hendrycks & Dietterich's CIFAR-10 values).
CORRUPTIONS = {
    "gaussian_noise": {1: 0.04, 3: 0.08, 5: 0.10},
    "gaussian_blur": {1: 0.4, 3: 0.7, 5: 1.0},
    "contrast": {1: 0.75, 3: 0.4, 5: 0.15},
}


def pgd_linf(forward: Forward, raw: torch.Tensor, labels: torch.Tensor, eps: float, *, steps: int = 10,
             alpha: float | None = None, to_model: Forward = lambda x: x, clip: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Adversarial raw images within ``eps`` (L-inf) of *raw* that raise the cross-entropy of *forward*.

    ``alpha`` defaults to ``2.5 * eps / steps``; ``clip`` keeps pixels in [0, 1].
    """
    if eps <= 0 or steps <= 0:
        return raw.clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    noise = torch.rand(raw.shape, generator=generator, dtype=raw.dtype) * 2 - 1
    delta = (noise * eps).to(raw.device)
    if clip:
        delta = (raw + delta).clamp(0, 1) - raw
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(forward(to_model(raw + delta)).float(), labels)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        if clip:
            delta = (raw + delta).clamp(0, 1) - raw
    return (raw + delta).detach()


def corrupt(raw: torch.Tensor, name: str, severity: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """*raw* images under one corruption at one severity (1, 3 or 5), clipped to [0, 1]."""
    value = CORRUPTIONS[name][severity]
    if name == "gaussian_noise":
        out = raw + value * torch.randn(raw.shape, generator=generator, dtype=raw.dtype)
    elif name == "gaussian_blur":
        size = 2 * int(torch.ceil(torch.tensor(3 * value))) + 1
        out = gaussian_blur(raw, kernel_size=[size, size], sigma=[value, value])
    else:
        means = raw.mean(dim=(-2, -1), keepdim=True)
        out = (raw - means) * value + means
    return out.clamp(0, 1)
