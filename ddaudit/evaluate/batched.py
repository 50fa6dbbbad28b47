"""The batched engine: E evaluators trained as one vmapped computation.

The evaluators' parameters are stacked along a leading dimension
(``torch.func.stack_module_state``); one vmapped ``functional_call`` runs all
evaluators on their own mini-batches (E, B, C, H, W), one backward pass of the
summed losses gives every evaluator its own gradient, and a vectorised
SGD step (:func:`sgd_step`, the formula of ``torch.optim.SGD``) updates them
together. Shuffle orders, augmentation draws, loss and lr schedule come from
the same functions the sequential engine uses, so given the same seeds both
engines run the same training, up to floating-point summation order.

The training step issues no host synchronisation: batch indices and
augmentation parameters are device tensors, and the learning rate is a host
number from the epoch index.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ddaudit.evaluate._shared import (
    EvaluatorRandomness,
    ProgressCallback,
    PREDICT_BATCH,
    Ensemble,
    TrainingRun,
    compute_context,
    draws_to_device,
    predict_in_batches,
    soft_cross_entropy,
    to_device,
)
from ddaudit.evaluate.augment import AugDraws
from ddaudit.evaluate.protocol import Protocol


def _forward(base: nn.Module, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
    return functional_call(base, (params, buffers), (x,))


def sgd_step(
    params: list[torch.Tensor],
    grads: list[torch.Tensor],
    momentum_buffers: list[torch.Tensor] | None,
    *,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> list[torch.Tensor] | None:
    """One in-place SGD step over stacked parameters; returns the momentum buffers.

    Same update as ``torch.optim.SGD`` (no dampening, no Nesterov):
    ``d = g + wd * p``; ``buf = d`` on the first step, else ``buf = m * buf + d``;
    ``p -= lr * buf``. Pass ``None`` buffers to start afresh (first step, lr decay).
    """
    direction = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay else list(grads)
    if momentum:
        if momentum_buffers is None:
            momentum_buffers = [d.clone() for d in direction]
        else:
            torch._foreach_mul_(momentum_buffers, momentum)
            torch._foreach_add_(momentum_buffers, direction)
        direction = momentum_buffers
    torch._foreach_add_(params, direction, alpha=-lr)
    return momentum_buffers


class BatchedEnsemble(Ensemble):
    """Trained evaluators as stacked parameters, in chunks of at most ``max_batched``, predicting in ``precision``."""

    def __init__(self, base: nn.Module, chunks: list[tuple[dict, dict]], precision: str = "fp32") -> None:
        self.base = base
        self.chunks = chunks
        self.precision = precision

    def __len__(self) -> int:
        return sum(next(iter(params.values())).shape[0] for params, _ in self.chunks)

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """One CPU ``state_dict`` per evaluator, loadable into ``create_model(...)``."""
        out = []
        for params, buffers in self.chunks:
            merged = {**params, **buffers}
            count = next(iter(params.values())).shape[0]
            out.extend({name: tensor[i].detach().cpu() for name, tensor in merged.items()} for i in range(count))
        return out

    def logits(self, x: torch.Tensor, batch_size: int = PREDICT_BATCH) -> torch.Tensor:
        """Logits (E, N, K), fp32 on CPU; each test batch goes through all evaluators of a chunk at once."""
        forward_all = vmap(partial(_forward, self.base), in_dims=(0, 0, None))
        out = []
        for params, buffers in self.chunks:
            device = next(iter(params.values())).device
            forward = partial(forward_all, params, buffers)
            out.append(predict_in_batches(forward, x, device, self.precision, batch_size))
        return torch.cat(out).cpu()


def train_batched(
    train_x: torch.Tensor,
    targets: torch.Tensor,
    *,
    protocol: Protocol,
    seeds: Sequence[int],
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
    progress: ProgressCallback | None = None,
    max_batched: int = 32,
) -> BatchedEnsemble:
    """Train one evaluator per seed, ``max_batched`` evaluators per vmapped computation."""
    run = TrainingRun.start(train_x, targets, protocol, len(seeds), num_classes, device, progress)
    chunks = []
    base = None
    done = 0
    for first in range(0, len(seeds), max_batched):
        chunk_seeds = list(seeds[first : first + max_batched])
        randomness = [EvaluatorRandomness.from_seed(seed) for seed in chunk_seeds]
        models = [run.create_evaluator(r) for r in randomness]
        if base is None:
            base = copy.deepcopy(models[0]).to("meta").train()
        params, buffers = stack_module_state(models)
        params = {k: v.detach().to(device) for k, v in params.items()}
        buffers = {k: v.detach().to(device) for k, v in buffers.items()}
        done = _train_chunk(run, base, params, buffers, randomness, precision, done)
        chunks.append((params, buffers))
    base.eval()
    return BatchedEnsemble(base, chunks, precision)


def _train_chunk(
    run: TrainingRun,
    base: nn.Module,
    params: dict[str, torch.Tensor],
    buffers: dict[str, torch.Tensor],
    randomness: list[EvaluatorRandomness],
    precision: str,
    done: int,
) -> int:
    """Train one chunk of stacked evaluators in place; returns the updated step count."""
    protocol, device = run.protocol, run.x.device
    evaluators = len(randomness)
    param_list = list(params.values())
    for tensor in param_list:
        tensor.requires_grad_(True)
    forward_all = vmap(partial(_forward, base), in_dims=(0, 0, 0))
    momentum_buffers = None
    for epoch in range(protocol.epochs):
        if epoch == protocol.decay_epoch:
            momentum_buffers = None
        lr = protocol.lr_at(epoch)
        plans = [run.plan_epoch(r) for r in randomness]
        orders = to_device(torch.stack([order for order, _ in plans]), device)
        draws = None if run.augment.is_identity else draws_to_device(AugDraws.stack([d for _, d in plans]), device)
        for rows, xb in run.batches(orders, draws):
            # Evaluators' losses are independent, so the gradient of their sum
            # with respect to evaluator e's parameters is e's own gradient.
            with compute_context(precision, device):
                logits = forward_all(params, buffers, xb)
            soft_cross_entropy(logits, run.targets[rows]).sum().backward()
            with torch.no_grad():
                momentum_buffers = sgd_step(
                    param_list,
                    [tensor.grad for tensor in param_list],
                    momentum_buffers,
                    lr=lr,
                    momentum=protocol.momentum,
                    weight_decay=protocol.weight_decay,
                )
            for tensor in param_list:
                tensor.grad = None
        done += evaluators * len(run.bounds)
        run.report(done)
    for tensor in param_list:
        tensor.requires_grad_(False)
    return done
