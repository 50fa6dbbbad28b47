"""Train evaluator networks on a (distilled) training set and predict a test set.

:func:`train_and_predict` is the entry point the audit uses; it picks the
engine (:func:`choose_engine`): the batched engine when the model can be
vmapped and there is more than one evaluator, the sequential reference
otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ddaudit.choices import ENGINES  # the engines the CLI offers (kept free of torch)
from ddaudit.errors import ConfigError
from ddaudit.evaluate._shared import (
    PREDICT_BATCH,
    Ensemble,
    ProgressCallback,
    as_targets,
    batch_bounds,
    check_images,
    check_inputs,
    plan_compile,
    resolve_precision,
)
from ddaudit.evaluate.batched import train_batched
from ddaudit.evaluate.models import is_batchable
from ddaudit.evaluate.protocol import Protocol, get_protocol
from ddaudit.evaluate.sequential import train_sequential

UNKNOWN_ENGINE = "unknown engine {engine!r}: use one of auto, batched, sequential"
NOT_BATCHABLE = "model {model} uses BatchNorm and cannot be trained batched: use the sequential engine (--sequential)"
BAD_MAX_BATCHED = "max_batched must be a positive integer, got {value!r}"


def choose_engine(
    model: str, num_evaluators: int, engine: str = "auto", device: str | torch.device = "cpu"
) -> str:
    """The engine that will run: ``"batched"`` or ``"sequential"``.

    ``"auto"`` batches only off the CPU. Batching pays by replacing many small
    kernel launches with a few large ones; a CPU has no launch cost to save,
    and there the vmapped (grouped) convolutions and norm layers run about
    twice as slow as one model at a time (``benchmarks/bench_engine.py``).
    """
    if engine not in ENGINES:
        raise ConfigError(UNKNOWN_ENGINE.format(engine=engine))
    if engine == "batched" and not is_batchable(model):
        raise ConfigError(NOT_BATCHABLE.format(model=model))
    if engine == "auto":
        accelerated = torch.device(device).type != "cpu"
        return "batched" if accelerated and is_batchable(model) and num_evaluators > 1 else "sequential"
    return engine


def train_evaluators(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    *,
    protocol: Protocol | str,
    seeds: Sequence[int],
    num_classes: int,
    device: str | torch.device = "cpu",
    engine: str = "auto",
    precision: str = "auto",
    compile: str = "auto",
    test_size: int = 0,
    progress: ProgressCallback | None = None,
    max_batched: int = 32,
) -> Ensemble:
    """Train one evaluator per seed; returns an ensemble with ``logits(x)`` and ``predict(x)``.

    ``train_y`` holds hard labels (N,) or soft labels (N, K) (probabilities,
    or logits which are softmaxed). Each evaluator's initial weights, shuffle
    orders and augmentation draws depend on its seed only, so an evaluator
    trains the same way whichever engine, chunk or position it runs in.
    ``precision`` is ``"auto"``, ``"fp32"`` or ``"bf16"`` (autocast for
    training and prediction; ``auto`` is bf16 on CPUs with native bf16, see
    :func:`~ddaudit.evaluate._shared.resolve_precision`). ``compile``
    (``auto``, ``on``, ``off``) runs the sequential engine's forward passes
    through ``torch.compile``; ``auto`` does so on a CPU when the run is long
    enough to pay for the compile time (``test_size``, the number of test
    images to be predicted, is part of that estimate; see
    :func:`~ddaudit.evaluate._shared.plan_compile`).
    ``progress(done_steps, total_steps)`` is called after every epoch.
    """
    if isinstance(protocol, str):
        protocol = get_protocol(protocol)
    seeds = [int(seed) for seed in seeds]
    check_inputs(train_x, train_y, train_x, num_classes, seeds)
    if not isinstance(max_batched, int) or max_batched < 1:
        raise ConfigError(BAD_MAX_BATCHED.format(value=max_batched))
    protocol.lr_at(0)  # raises the 'needs the learned lr' error before any training
    chosen = choose_engine(protocol.model, len(seeds), engine, device)
    targets = as_targets(train_y, num_classes)
    options = dict(
        protocol=protocol,
        seeds=seeds,
        num_classes=num_classes,
        device=torch.device(device),
        precision=resolve_precision(precision, device),
        progress=progress,
    )
    x = train_x.detach().float().cpu()
    if chosen == "batched":
        return train_batched(x, targets, max_batched=max_batched, **options)
    steps = protocol.epochs * len(batch_bounds(x.shape[0], protocol.batch_size))
    plan = plan_compile(compile, device, steps, test_size * len(seeds))
    return train_sequential(x, targets, compile_plan=plan, **options)


def train_and_predict(
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    *,
    test_batch_size: int = PREDICT_BATCH,
    **options: Any,
) -> torch.Tensor:
    """Train one evaluator per seed on (train_x, train_y); return their test predictions.

    Returns an int64 CPU tensor (E, N_test): row ``e`` holds the classes the
    final-epoch network of ``seeds[e]`` predicts for ``test_x``, ``test_batch_size``
    images per forward pass. ``options`` are the keyword arguments of
    :func:`train_evaluators` (``protocol``, ``seeds`` and ``num_classes`` required;
    ``device``, ``engine``, ``precision``, ``compile``, ``progress``, ``max_batched``),
    with ``test_size`` taken from ``test_x``. The test images are checked against
    the training images before any training.
    """
    check_images(train_x, test_x)
    ensemble = train_evaluators(train_x, train_y, test_size=test_x.shape[0], **options)
    return ensemble.predict(test_x.detach().float(), batch_size=test_batch_size)
