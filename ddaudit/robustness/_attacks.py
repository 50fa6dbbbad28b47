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
             generator: torch.Generator | None = None, stop_on_success: bool = False,
             return_predictions: bool = False):
    """Adversarial raw images within ``eps`` (L-inf) of *raw* that raise the cross-entropy of *forward*.

    ``alpha`` defaults to ``2.5 * eps / steps``; ``clip`` keeps pixels in [0, 1].
    With ``stop_on_success`` a row leaves the attack at the first iterate that
    *forward* misclassifies and keeps that iterate (an audit needs only one
    adversarial example per row; rows still correct run every step), so a
    weak model costs fewer steps. The forward must treat rows independently
    (evaluation mode), as every evaluator does. With ``return_predictions``
    (and ``stop_on_success``) it returns ``(images, predicted labels)``: the
    labels of the fooling iterates are the ones the attack already computed,
    so only the rows that resisted every step need one more forward pass.
    """
    if return_predictions and not stop_on_success:
        raise ValueError("return_predictions needs stop_on_success")
    if eps <= 0 or steps <= 0:
        if return_predictions:
            with torch.no_grad():
                return raw.clone(), forward(to_model(raw)).float().argmax(-1)
        return raw.clone()
    alpha = 2.5 * eps / steps if alpha is None else alpha
    noise = torch.rand(raw.shape, generator=generator, dtype=raw.dtype) * 2 - 1
    delta = (noise * eps).to(raw.device)
    if clip:
        delta = (raw + delta).clamp(0, 1) - raw
    if stop_on_success:
        images, predicted = _pgd_until_wrong(forward, raw, labels, delta, eps, steps=steps, alpha=alpha,
                                             to_model=to_model, clip=clip)
        return (images, predicted) if return_predictions else images
    for _ in range(steps):
        delta.requires_grad_(True)
        loss = F.cross_entropy(forward(to_model(raw + delta)).float(), labels)
        (grad,) = torch.autograd.grad(loss, delta)
        delta = (delta.detach() + alpha * grad.sign()).clamp(-eps, eps)
        if clip:
            delta = (raw + delta).clamp(0, 1) - raw
    return (raw + delta).detach()


def _pgd_until_wrong(forward: Forward, raw: torch.Tensor, labels: torch.Tensor, delta: torch.Tensor, eps: float, *,
                     steps: int, alpha: float, to_model: Forward, clip: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The PGD loop on the rows still classified correctly; a row keeps the first iterate that fools *forward*.

    Returns the images and their predicted labels (the final iterate's rows are predicted once more, without grad).
    """
    out = raw.clone()
    predicted = labels.clone()
    active = torch.arange(len(raw), device=raw.device)
    for _ in range(steps):
        x, d = raw[active], delta[active].requires_grad_(True)
        logits = forward(to_model(x + d)).float()
        guess = logits.argmax(-1)
        correct = guess == labels[active]
        out[active[~correct]] = (x + d)[~correct].detach()
        predicted[active[~correct]] = guess[~correct].detach()
        if not correct.any():
            return out, predicted
        # Rows are independent, so the kept rows' gradient signs are those of the whole batch's.
        loss = F.cross_entropy(logits[correct], labels[active][correct], reduction="sum")
        (grad,) = torch.autograd.grad(loss, d)
        step = (d.detach() + alpha * grad.sign()).clamp(-eps, eps)[correct]
        active = active[correct]
        delta[active] = (raw[active] + step).clamp(0, 1) - raw[active] if clip else step
    out[active] = raw[active] + delta[active]
    if len(active):
        with torch.no_grad():
            predicted[active] = forward(to_model(out[active])).float().argmax(-1)
    return out, predicted


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
