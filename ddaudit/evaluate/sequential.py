"""The reference engine: one ``nn.Module`` and one ``torch.optim.SGD`` per evaluator, one after another.

It is the definition the batched engine is tested against, and the engine
for models that cannot be vmapped (BatchNorm).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ddaudit.evaluate._shared import (
    EvaluatorRandomness,
    ProgressCallback,
    PREDICT_BATCH,
    CompilePlan,
    Ensemble,
    TrainingRun,
    compiled,
    compute_context,
    draws_to_device,
    predict_in_batches,
    soft_cross_entropy,
    to_device,
)
from ddaudit.evaluate.protocol import Protocol


class SequentialEnsemble(Ensemble):
    """Trained evaluators as a list of modules (in eval mode), predicting in ``precision``,
    through ``torch.compile`` when ``compile_predict``."""

    def __init__(self, models: list[nn.Module], precision: str = "fp32", compile_predict: bool = False) -> None:
        self.models = models
        self.precision = precision
        self.compile_predict = compile_predict

    def __len__(self) -> int:
        return len(self.models)

    def state_dicts(self) -> list[dict[str, torch.Tensor]]:
        """One CPU ``state_dict`` per evaluator."""
        return [{name: t.detach().cpu() for name, t in model.state_dict().items()} for model in self.models]

    def logits(self, x: torch.Tensor, batch_size: int = PREDICT_BATCH) -> torch.Tensor:
        """Logits (E, N, K), fp32 on CPU."""
        device = next(self.models[0].parameters()).device
        out = []
        for model in self.models:
            model.eval()
            forward = compiled(model) if self.compile_predict else model
            out.append(predict_in_batches(forward, x, device, self.precision, batch_size, pad_last=self.compile_predict))
        return torch.stack(out).cpu()


def train_sequential(
    train_x: torch.Tensor,
    targets: torch.Tensor,
    *,
    protocol: Protocol,
    seeds: Sequence[int],
    num_classes: int,
    device: torch.device,
    precision: str = "fp32",
    compile_plan: CompilePlan = CompilePlan(),
    progress: ProgressCallback | None = None,
) -> SequentialEnsemble:
    """Train one evaluator per seed with plain autograd and ``torch.optim.SGD``.

    ``precision`` is ``"fp32"`` or ``"bf16"`` (autocast; see
    :func:`ddaudit.evaluate._shared.resolve_precision`); ``compile_plan`` says
    whether the forward pass runs through ``torch.compile`` in training and in
    prediction.
    """
    run = TrainingRun.start(train_x, targets, protocol, len(seeds), num_classes, device, progress)
    models = []
    for index, seed in enumerate(seeds):
        randomness = EvaluatorRandomness.from_seed(seed)
        model = run.create_evaluator(randomness)
        model.to(device).train()
        forward = compiled(model) if compile_plan.train else model
        optimizer = None
        for epoch in range(protocol.epochs):
            if optimizer is None or epoch == protocol.decay_epoch:
                optimizer = torch.optim.SGD(
                    model.parameters(),
                    lr=protocol.lr_at(epoch),
                    momentum=protocol.momentum,
                    weight_decay=protocol.weight_decay,
                )
            order, draws = run.plan_epoch(randomness)
            order = to_device(order, device)
            draws = draws_to_device(draws, device) if draws is not None else None
            for rows, xb in run.batches(order, draws):
                with compute_context(precision, device):
                    logits = forward(xb)
                loss = soft_cross_entropy(logits, run.targets[rows])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            run.report((index * protocol.epochs + epoch + 1) * len(run.bounds))
        model.eval()
        models.append(model)
    return SequentialEnsemble(models, precision, compile_plan.predict)
