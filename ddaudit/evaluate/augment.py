"""Differentiable siamese augmentation (DSA) with explicit, reproducible randomness.

Augmenting is split in two steps so that every engine draws the same numbers:
:meth:`DiffAugment.draw` turns a ``torch.Generator`` into an :class:`AugDraws`
table (one op family per batch, a row of uniforms per sample), and
:meth:`DiffAugment.apply` turns images plus that table into augmented images.
``apply`` has no data-dependent branches and no host synchronisation: every op
family of the strategy is computed with identity parameters for the samples
that did not draw it, and a mask picks the result. So one call can augment the
batches of many evaluators at once, each with its own draws.

Mode 'S' of DSA: each batch draws ONE op family from the strategy (``color``
applies brightness, saturation and contrast in turn). Everything is
differentiable with respect to the images.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from ddaudit.errors import ConfigError

OPS = ("color", "crop", "cutout", "flip", "scale", "rotate")
DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"
UNKNOWN_OP = "unknown augmentation {op!r} in strategy {strategy!r}: use ops from {ops} joined by '_', or 'none'"

# Columns of the per-sample uniform table.
_BRIGHTNESS, _SATURATION, _CONTRAST, _CROP_X, _CROP_Y, _CUT_X, _CUT_Y, _FLIP, _SCALE_X, _SCALE_Y, _ROTATE = range(11)
NUM_UNIFORMS = 11

_GEOMETRIC = ("crop", "flip", "scale", "rotate")


class AugDraws(NamedTuple):
    """The random numbers behind one augmentation call.

    ``op`` (N,) indexes the strategy's op list (equal within a batch in mode
    'S'); ``u`` (N, NUM_UNIFORMS) holds uniforms in [0, 1) that each op maps
    to its parameters.
    """

    op: torch.Tensor
    u: torch.Tensor

    def to(self, device: torch.device | str) -> "AugDraws":
        return AugDraws(self.op.to(device, non_blocking=True), self.u.to(device, non_blocking=True))

    def rows(self, start: int, stop: int) -> "AugDraws":
        """Rows ``start:stop`` along the last batch dimension (works on stacked (E, N, ...) draws)."""
        return AugDraws(self.op[..., start:stop], self.u[..., start:stop, :])

    def flatten(self) -> "AugDraws":
        """Merge leading evaluator and sample dimensions: (E, B, ...) -> (E*B, ...)."""
        return AugDraws(self.op.reshape(-1), self.u.reshape(-1, self.u.shape[-1]))

    @staticmethod
    def stack(draws: Sequence["AugDraws"]) -> "AugDraws":
        return AugDraws(torch.stack([d.op for d in draws]), torch.stack([d.u for d in draws]))


def parse_strategy(strategy: str) -> tuple[str, ...]:
    """Op families of a strategy string such as ``"color_crop_cutout"``; ``"none"`` gives ()."""
    if strategy in ("", "none"):
        return ()
    ops = tuple(strategy.split("_"))
    for op in ops:
        if op not in OPS:
            raise ConfigError(UNKNOWN_OP.format(op=op, strategy=strategy, ops=", ".join(OPS)))
    return ops


class DiffAugment:
    """DSA over image batches (N, C, H, W).

    Parameters are DSA's defaults: ``brightness`` shift up to +-0.5 x ratio,
    ``saturation`` factor in [0, ratio), ``contrast`` factor in
    [ratio, ratio + 1), ``crop`` translation by up to ratio x size pixels with
    zero padding, ``cutout`` square of ratio x size, ``flip`` probability,
    ``scale`` factors in [1/ratio, ratio] per axis, ``rotate`` up to +-ratio
    degrees.
    """

    def __init__(
        self,
        strategy: str = DEFAULT_STRATEGY,
        *,
        brightness: float = 1.0,
        saturation: float = 2.0,
        contrast: float = 0.5,
        crop: float = 0.125,
        cutout: float = 0.5,
        flip: float = 0.5,
        scale: float = 1.2,
        rotate: float = 15.0,
    ) -> None:
        self.strategy = strategy
        self.ops = parse_strategy(strategy)
        self.brightness = brightness
        self.saturation = saturation
        self.contrast = contrast
        self.crop = crop
        self.cutout = cutout
        self.flip = flip
        self.scale = scale
        self.rotate = rotate

    def __repr__(self) -> str:
        return f"DiffAugment({self.strategy!r})"

    @property
    def is_identity(self) -> bool:
        return not self.ops

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``x`` with one op family for the batch and per-sample parameters."""
        if self.is_identity:
            return x
        return self.apply(x, self.draw([x.shape[0]], generator, device=x.device))

    def grouped(self, x: torch.Tensor, groups: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Augment ``groups`` equal consecutive slices of ``x`` as independent batches.

        ``x`` is (G*B, C, H, W), the batches of G evaluators; each slice gets
        its own op draw and per-sample parameters.
        """
        if self.is_identity:
            return x
        if x.shape[0] % groups:
            raise ValueError(f"batch of {x.shape[0]} does not split into {groups} equal groups")
        size = x.shape[0] // groups
        return self.apply(x, self.draw([size] * groups, generator, device=x.device))

    def siamese(self, *xs: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Apply the same op with the same parameters to every image of every batch in ``xs``.

        This is DSA's use in distillation: the real and the synthetic batch
        must see the same transformation for their statistics to be compared.
        """
        if self.is_identity or not xs:
            return tuple(xs)
        one = self.draw([1], generator, device=xs[0].device)
        out = []
        for x in xs:
            n = x.shape[0]
            out.append(self.apply(x, AugDraws(one.op.to(x.device).expand(n), one.u.to(x.device).expand(n, -1))))
        return tuple(out)

    def draw(
        self,
        batch_sizes: Sequence[int],
        generator: torch.Generator | None = None,
        *,
        device: torch.device | str | None = None,
    ) -> AugDraws:
        """Draw one op per batch and uniforms for every sample of consecutive batches.

        The numbers are drawn on the generator's device (on ``device``, or the
        CPU, with the global RNG when no generator is given) and returned on
        ``device``. The uniform table has the same layout for every strategy.
        """
        draw_device = generator.device if generator is not None else torch.device(device or "cpu")
        sizes = [int(size) for size in batch_sizes]
        total = sum(sizes)
        num_ops = max(len(self.ops), 1)
        batch_op = torch.randint(num_ops, (len(sizes),), generator=generator, device=draw_device)
        u = torch.rand((total, NUM_UNIFORMS), generator=generator, device=draw_device)
        if len(set(sizes)) <= 1:
            op = batch_op.repeat_interleave(sizes[0] if sizes else 0)
        else:
            repeats = torch.tensor(sizes, dtype=torch.long).to(draw_device)
            op = torch.repeat_interleave(batch_op, repeats, output_size=total)
        draws = AugDraws(op, u)
        return draws.to(device) if device is not None else draws

    def apply(self, x: torch.Tensor, draws: AugDraws) -> torch.Tensor:
        """Augment ``x`` (N, C, H, W) with the parameters in ``draws`` (N rows)."""
        if self.is_identity:
            return x
        chosen = {name: _mask_for(draws.op, self.ops, name) for name in set(self.ops)}
        u = draws.u.to(x.dtype)
        if "color" in chosen:
            x = torch.where(_image_mask(chosen["color"]), self._color(x, u), x)
        if any(name in chosen for name in _GEOMETRIC):
            geometric = torch.zeros_like(draws.op, dtype=torch.bool)
            for name in _GEOMETRIC:
                if name in chosen:
                    geometric = geometric | chosen[name]
            theta = self._theta(x, u, chosen)
            grid = F.affine_grid(theta, list(x.shape), align_corners=False)
            moved = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
            x = torch.where(_image_mask(geometric), moved, x)
        if "cutout" in chosen:
            x = x * self._cutout_keep(x, u, chosen["cutout"])
        return x

    def _color(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        shift = (u[:, _BRIGHTNESS] - 0.5) * self.brightness
        x = x + shift.view(-1, 1, 1, 1)
        channel_mean = x.mean(dim=1, keepdim=True)
        x = (x - channel_mean) * (u[:, _SATURATION] * self.saturation).view(-1, 1, 1, 1) + channel_mean
        image_mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - image_mean) * (u[:, _CONTRAST] + self.contrast).view(-1, 1, 1, 1) + image_mean

    def _theta(self, x: torch.Tensor, u: torch.Tensor, chosen: dict[str, torch.Tensor]) -> torch.Tensor:
        """Per-sample affine matrices (N, 2, 3); identity for samples that drew another op."""
        n, _, h, w = x.shape
        zero, one = torch.zeros(n, dtype=x.dtype, device=x.device), torch.ones(n, dtype=x.dtype, device=x.device)
        a, b, c, d, tx, ty = one, zero, zero, one, zero, zero
        if "crop" in chosen:
            mask = chosen["crop"]
            shift_x = _integer_shift(u[:, _CROP_X], int(w * self.crop + 0.5))
            shift_y = _integer_shift(u[:, _CROP_Y], int(h * self.crop + 0.5))
            tx = torch.where(mask, 2.0 * shift_x / w, tx)
            ty = torch.where(mask, 2.0 * shift_y / h, ty)
        if "flip" in chosen:
            flipped = chosen["flip"] & (u[:, _FLIP] < self.flip)
            a = torch.where(flipped, -one, a)
        if "scale" in chosen:
            mask = chosen["scale"]
            low = 1.0 / self.scale
            a = torch.where(mask, u[:, _SCALE_X] * (self.scale - low) + low, a)
            d = torch.where(mask, u[:, _SCALE_Y] * (self.scale - low) + low, d)
        if "rotate" in chosen:
            mask = chosen["rotate"]
            angle = (u[:, _ROTATE] - 0.5) * 2.0 * math.radians(self.rotate)
            cos, sin = torch.cos(angle), torch.sin(angle)
            a, b = torch.where(mask, cos, a), torch.where(mask, sin, b)
            c, d = torch.where(mask, -sin, c), torch.where(mask, cos, d)
        return torch.stack([torch.stack([a, b, tx], dim=1), torch.stack([c, d, ty], dim=1)], dim=1)

    def _cutout_keep(self, x: torch.Tensor, u: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """A (N, 1, H, W) multiplier: 0 inside each drawn cutout square, 1 elsewhere."""
        _, _, h, w = x.shape
        cut_h, cut_w = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
        centre_y = torch.floor(u[:, _CUT_Y] * (h + 1 - cut_h % 2))
        centre_x = torch.floor(u[:, _CUT_X] * (w + 1 - cut_w % 2))
        top, left = centre_y - cut_h // 2, centre_x - cut_w // 2
        rows = torch.arange(h, device=x.device, dtype=x.dtype).view(1, h, 1)
        cols = torch.arange(w, device=x.device, dtype=x.dtype).view(1, 1, w)
        inside_rows = (rows >= top.view(-1, 1, 1)) & (rows < (top + cut_h).view(-1, 1, 1))
        inside_cols = (cols >= left.view(-1, 1, 1)) & (cols < (left + cut_w).view(-1, 1, 1))
        cut = inside_rows & inside_cols & mask.view(-1, 1, 1)
        return (~cut).to(x.dtype).unsqueeze(1)


def _mask_for(op: torch.Tensor, ops: tuple[str, ...], name: str) -> torch.Tensor:
    """Samples whose drawn op index names ``name`` (a strategy may list an op twice)."""
    mask = torch.zeros_like(op, dtype=torch.bool)
    for index, candidate in enumerate(ops):
        if candidate == name:
            mask = mask | (op == index)
    return mask


def _image_mask(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


def _integer_shift(u: torch.Tensor, max_shift: int) -> torch.Tensor:
    """Uniform integer in [-max_shift, max_shift] from a uniform in [0, 1)."""
    return torch.floor(u * (2 * max_shift + 1)) - max_shift
