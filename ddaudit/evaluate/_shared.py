"""Pieces both training engines call, so that the two cannot drift apart.

An evaluator is defined by its seed alone: the seed fixes its initial
weights, its shuffle order every epoch and its augmentation draws, through
separate streams derived from the seed (:func:`derive_seed`). Both engines get
an epoch's shuffle orders and augmentation draws from :func:`plan_epoch`, the
loss from :func:`soft_cross_entropy`, the learning rate from
:meth:`Protocol.lr_at`, the arithmetic precision from :func:`resolve_precision`
and :func:`compute_context`, and test predictions from :func:`predict_in_batches`.
Both start from a :class:`TrainingRun` (the data on the device, the mini-batch
bounds, the evaluators' initial weights, progress) and return an
:class:`Ensemble`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ddaudit.choices import COMPILE_SETTINGS, PRECISIONS  # the settings the CLI offers (kept free of torch)
from ddaudit.errors import ConfigError, InputError
from ddaudit.evaluate.augment import AugDraws, DiffAugment
from ddaudit.evaluate.models import create_model
from ddaudit.evaluate.protocol import Protocol

ProgressCallback = Callable[[int, int], None]

INIT_STREAM, SHUFFLE_STREAM, AUGMENT_STREAM = 0, 1, 2

BAD_IMAGES = "{what} must be a float tensor of shape (N, C, H, W), got {shape}: pass images as stored in the synthetic set"
EMPTY_TRAIN = "the training set is empty: the synthetic set holds no images"
SHAPE_MISMATCH = "test images are {test} per image but training images are {train}: use a real dataset whose images match the synthetic set"
BAD_LABELS = "train_y must be (N,) class indices or (N, {k}) soft labels for N={n} images, got shape {shape}"
LABEL_RANGE = "training labels must lie in [0, {k}), found {low}..{high}: check num_classes"
NO_SEEDS = "at least one evaluator seed is needed"
UNKNOWN_PRECISION = "unknown precision {value!r}: use auto, fp32 or bf16"
UNKNOWN_COMPILE = "unknown compile setting {value!r}: use auto, on or off"


#: ``compile="auto"`` compiles an evaluator's training step from this many steps
#: per evaluator, and test prediction from this many test images x evaluators.
#: Measured on one core (Xeon, AMX): a ConvNet-128 bf16 training step on 100
#: images 375 ms eager, 170 ms compiled; prediction 137 ms eager, 15 ms compiled
#: per 64 images; compiling about 20-30 s without inductor's on-disk cache and
#: about 5 s with it. Below these sizes a cold compile costs more than it saves.
COMPILE_MIN_TRAIN_STEPS = 300
COMPILE_MIN_PREDICTIONS = 100_000

#: Test images per forward pass. With freed memory kept (``runtime.keep_freed_memory``)
#: large batches cost no page faults and amortise each layer's overhead: on 2 cores,
#: 2,048 test images took 2.2 s at 1024, 3.2 s at 256 and 6.0 s at 64 per batch (bf16).
PREDICT_BATCH = 1024


def derive_seed(seed: int, stream: int) -> int:
    """An independent 63-bit seed for one random stream of an evaluator."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFFFFFFFFFF, stream]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class EvaluatorRandomness:
    """The CPU generators of one evaluator (shuffles and augmentation draws)."""

    seed: int
    shuffle: torch.Generator
    augment: torch.Generator

    @classmethod
    def from_seed(cls, seed: int) -> "EvaluatorRandomness":
        shuffle = torch.Generator().manual_seed(derive_seed(seed, SHUFFLE_STREAM))
        augment = torch.Generator().manual_seed(derive_seed(seed, AUGMENT_STREAM))
        return cls(int(seed), shuffle, augment)

    @property
    def init_seed(self) -> int:
        return derive_seed(self.seed, INIT_STREAM)


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """Mini-batch row ranges of one epoch; the last, smaller batch is kept."""
    return [(start, min(start + batch_size, n)) for start in range(0, n, batch_size)]


@dataclass
class TrainingRun:
    """What one engine call shares across its evaluators: the data, the batches, the models' shape, progress.

    Both engines start from :meth:`start`, so they initialise an evaluator from
    its seed the same way, form an epoch's augmented mini-batches the same way
    (:meth:`batches`) and count progress in the same unit: optimiser steps
    summed over all evaluators.
    """

    x: torch.Tensor
    targets: torch.Tensor
    protocol: Protocol
    num_classes: int
    augment: DiffAugment
    bounds: list[tuple[int, int]]
    total_steps: int
    progress: ProgressCallback | None = None

    @classmethod
    def start(
        cls,
        train_x: torch.Tensor,
        targets: torch.Tensor,
        protocol: Protocol,
        num_evaluators: int,
        num_classes: int,
        device: torch.device,
        progress: ProgressCallback | None,
    ) -> "TrainingRun":
        """Move the training images ``(N, C, H, W)`` and targets ``(N, K)`` to ``device`` and report step 0."""
        bounds = batch_bounds(train_x.shape[0], protocol.batch_size)
        total_steps = num_evaluators * protocol.epochs * len(bounds)
        augment = DiffAugment(protocol.augmentation_strategy)
        run = cls(train_x.to(device), targets.to(device), protocol, num_classes, augment, bounds, total_steps, progress)
        run.report(0)
        return run

    def plan_epoch(self, randomness: EvaluatorRandomness) -> tuple[torch.Tensor, AugDraws | None]:
        """:func:`plan_epoch` for one evaluator of this run."""
        return plan_epoch(randomness, self.x.shape[0], self.protocol.batch_size, self.augment)

    def batches(
        self, order: torch.Tensor, draws: AugDraws | None
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch's mini-batches as ``(rows, images)``, augmented by the matching rows of ``draws``.

        ``order`` (on the device) is one evaluator's shuffle ``(N,)`` or stacked
        evaluators' ``(E, N)``; ``rows`` and ``images`` then lead with the same
        dimensions: ``(B,)`` and ``(B, C, H, W)``, or ``(E, B)`` and ``(E, B, C, H, W)``.
        """
        for start, stop in self.bounds:
            rows = order[..., start:stop]
            images = self.x[rows]
            if draws is not None:
                flat = self.augment.apply(images.flatten(0, -4), draws.rows(start, stop).flatten())
                images = flat.view(images.shape)
            yield rows, images

    def report(self, done_steps: int) -> None:
        """Tell the progress callback, if any, how many optimiser steps are done."""
        if self.progress is not None:
            self.progress(done_steps, self.total_steps)

    def create_evaluator(self, randomness: EvaluatorRandomness) -> nn.Module:
        """A freshly initialised evaluator network (on the CPU) for the seed of ``randomness``."""
        _, channel, height, width = self.x.shape
        return create_model(self.protocol.model, channel, self.num_classes, (height, width), seed=randomness.init_seed)


class Ensemble:
    """Trained evaluators, as either engine returns them: ``logits(x)`` and ``predict(x)`` over a test set."""

    def logits(self, x: torch.Tensor, batch_size: int = PREDICT_BATCH) -> torch.Tensor:
        """Logits (E, N, K), fp32 on CPU."""
        raise NotImplementedError

    def predict(self, x: torch.Tensor, batch_size: int = PREDICT_BATCH) -> torch.Tensor:
        """Predicted classes (E, N), int64 on CPU."""
        return self.logits(x, batch_size).argmax(dim=-1)


def plan_epoch(
    randomness: EvaluatorRandomness, n: int, batch_size: int, aug: DiffAugment
) -> tuple[torch.Tensor, AugDraws | None]:
    """One evaluator's shuffle order (N,) and augmentation draws (N rows) for one epoch."""
    order = torch.randperm(n, generator=randomness.shuffle)
    if aug.is_identity:
        return order, None
    sizes = [stop - start for start, stop in batch_bounds(n, batch_size)]
    return order, aug.draw(sizes, randomness.augment)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU tensor to ``device`` without making the host wait for queued GPU work."""
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)


def draws_to_device(draws: AugDraws, device: torch.device) -> AugDraws:
    return AugDraws(to_device(draws.op, device), to_device(draws.u, device))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over a batch against target distributions (one-hot rows for hard labels).

    ``logits`` and ``targets`` are (..., B, K); the result has the leading
    shape (a scalar for one evaluator, (E,) for stacked evaluators).
    """
    return -(targets * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1).mean(dim=-1)


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (AMX tiles or AVX512-BF16).

    Without it oneDNN emulates bf16 and is slower than fp32, so ``auto``
    precision stays fp32.
    """
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """The precision the evaluators compute in: ``"fp32"`` or ``"bf16"``.

    ``auto`` is bf16 on a CPU with native bf16 arithmetic and fp32 elsewhere
    (on a GPU evaluator training is launch-bound, not compute-bound). bf16
    means autocast: weights, optimiser state and the loss stay fp32, matrix
    products and convolutions run in bf16 (``benchmarks/RESULTS.md`` records
    the accuracy against fp32).
    """
    if precision not in PRECISIONS:
        raise ConfigError(UNKNOWN_PRECISION.format(value=precision))
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_native_bf16() else "fp32"


@dataclass(frozen=True)
class CompilePlan:
    """Which parts of an engine run through ``torch.compile``."""

    train: bool = False
    predict: bool = False


def plan_compile(setting: str, device: torch.device | str, train_steps: int, predictions: int) -> CompilePlan:
    """Resolve ``compile`` (``auto``/``on``/``off``) for one training run.

    ``train_steps`` are optimiser steps per evaluator, ``predictions`` test
    images times evaluators (0 when unknown). ``auto`` compiles only on a CPU
    with a C++ compiler (what inductor generates there), and only the parts
    whose size passes :data:`COMPILE_MIN_TRAIN_STEPS` /
    :data:`COMPILE_MIN_PREDICTIONS`; ``on`` compiles both.
    """
    if setting not in COMPILE_SETTINGS:
        raise ConfigError(UNKNOWN_COMPILE.format(value=setting))
    if setting == "off":
        return CompilePlan()
    if setting == "on":
        return CompilePlan(train=True, predict=True)
    if torch.device(device).type != "cpu" or not _has_cxx_compiler():
        return CompilePlan()
    return CompilePlan(train=train_steps >= COMPILE_MIN_TRAIN_STEPS, predict=predictions >= COMPILE_MIN_PREDICTIONS)


def _has_cxx_compiler() -> bool:
    import shutil

    return any(shutil.which(name) for name in ("g++", "c++", "clang++"))


def compiled(module: Callable) -> Callable:
    """``torch.compile`` with static shapes: one graph per batch shape (at most two per epoch)."""
    return torch.compile(module, dynamic=False)


def compute_context(precision: str, device: torch.device) -> AbstractContextManager:
    """Autocast to bf16 for ``"bf16"``; a no-op context for ``"fp32"``."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def predict_in_batches(
    forward: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    device: torch.device,
    precision: str,
    batch_size: int = PREDICT_BATCH,
    *,
    pad_last: bool = False,
) -> torch.Tensor:
    """``forward`` over ``x`` in batches under ``inference_mode``; fp32 logits concatenated on the last-but-one dim.

    ``pad_last`` fills the last, smaller batch up with copies of its first
    image and drops their outputs, so a compiled ``forward`` sees one shape
    (a sample's output does not depend on the other samples of its batch).
    """
    pieces = []
    with torch.inference_mode(), compute_context(precision, device):
        for start, stop in batch_bounds(x.shape[0], batch_size):
            xb = x[start:stop]
            short = batch_size - xb.shape[0] if pad_last and x.shape[0] > batch_size else 0
            if short:
                xb = torch.cat([xb, xb[:1].expand(short, *xb.shape[1:])])
            out = forward(to_device(xb, device)).float()
            pieces.append(out[..., : stop - start, :] if short else out)
    return torch.cat(pieces, dim=-2)


def as_targets(train_y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Training targets as (N, K) distributions.

    Hard labels become one-hot rows. Soft labels that are already
    distributions (non-negative rows summing to 1) are kept; anything else is
    read as logits (DATM stores learned logits) and softmaxed.
    """
    if train_y.dim() == 1:
        if train_y.dtype.is_floating_point:
            if not bool(torch.equal(train_y, train_y.round())):
                raise InputError(BAD_LABELS.format(k=num_classes, n=train_y.shape[0], shape=tuple(train_y.shape)))
        labels = train_y.long()
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
            raise InputError(LABEL_RANGE.format(k=num_classes, low=int(labels.min()), high=int(labels.max())))
        return F.one_hot(labels, num_classes).float()
    soft = train_y.float()
    rows_are_distributions = bool((soft >= 0).all()) and bool(torch.allclose(soft.sum(-1), torch.ones(1), atol=1e-3))
    return soft if rows_are_distributions else torch.softmax(soft, dim=-1)


def check_images(train_x: torch.Tensor, test_x: torch.Tensor) -> None:
    """Raise InputError unless the training images are a non-empty batch and the test images match them."""
    for what, x in (("train_x", train_x), ("test_x", test_x)):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.dtype.is_floating_point:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise InputError(BAD_IMAGES.format(what=what, shape=shape))
    if train_x.shape[0] == 0:
        raise InputError(EMPTY_TRAIN)
    if tuple(train_x.shape[1:]) != tuple(test_x.shape[1:]):
        raise InputError(SHAPE_MISMATCH.format(test=tuple(test_x.shape[1:]), train=tuple(train_x.shape[1:])))


def check_inputs(
    train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, num_classes: int, seeds: Sequence[int]
) -> None:
    """Raise InputError/ConfigError for inputs no engine could train on."""
    check_images(train_x, test_x)
    n = train_x.shape[0]
    shape_ok = train_y.dim() == 1 or (train_y.dim() == 2 and train_y.shape[1] == num_classes)
    if not shape_ok or train_y.shape[0] != n:
        raise InputError(BAD_LABELS.format(k=num_classes, n=n, shape=tuple(train_y.shape)))
    if len(seeds) == 0:
        raise ConfigError(NO_SEEDS)
