"""Fair expert training for trajectory matching (MTT's ``buffer.py``).

MTT's distillation loss never sees a real image: real data enters only through
the expert trajectories ``buffer.py`` records. FairDD was never applied here;
the fair counterpart implemented is to train the experts on the group-balanced
risk, so the trajectories the unchanged ``distill.py`` matches are those of
networks that weight every group of a class equally:

- ``sample`` (default): the training ``DataLoader`` draws rows with probability
  proportional to :func:`~ddaudit.mitigate.groups.row_scales` computed per class
  over the whole training set (class frequencies kept, groups equal within a
  class; KDE weights in mode ``weights``), with replacement, one epoch = N rows;
- ``reweight``: the usual shuffled epoch, with the cross-entropy of each batch
  replaced by ``mean_i(s_i * l_i)``, the same weights as importance weights.

The loader is recognised as the one built by the codebase over a dataset of
exactly as many rows as the training set, with ``shuffle=True``; the batches it
yields are recorded so the criterion can find the rows of the batch it scores.
"""

from __future__ import annotations

import inspect
import sys
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F

from ddaudit.choices import EXPERT_STRATEGIES  # expert-training strategies for ``--experts``
from ddaudit.errors import ConfigError
from ddaudit.hooks.patchers._criterion import intercepting_criterion
from ddaudit.mitigate.groups import row_scales

ERR_STRATEGY = "unknown --experts {value!r}; use sample (group-balanced batches) or reweight (weighted cross-entropy)"


def check_strategy(value: str) -> str:
    if value not in EXPERT_STRATEGIES:
        raise ConfigError(ERR_STRATEGY.format(value=value))
    return value


class _RecordingBatchSampler(torch.utils.data.Sampler):
    """Groups a sampler's indices into batches and reports each batch as it is handed out."""

    def __init__(self, sampler, batch_size: int, drop_last: bool, on_batch) -> None:
        self.sampler, self.batch_size, self.drop_last, self.on_batch = sampler, batch_size, drop_last, on_batch

    def __iter__(self):
        batch: list[int] = []
        for index in self.sampler:
            batch.append(int(index))
            if len(batch) == self.batch_size:
                self.on_batch(batch)
                yield batch
                batch = []
        if batch and not self.drop_last:
            self.on_batch(batch)
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)


class ExpertTraining:
    """DataLoader and criterion replacements for ``buffer.py``'s expert training."""

    def __init__(self, session) -> None:
        self.session = session
        self.strategy = check_strategy(session.experts)
        self._pending: deque[list[int]] = deque()
        self._scales: np.ndarray | None = None

    def row_scales(self) -> np.ndarray:
        """Per-row multipliers over the whole training set (mean 1 within each class)."""
        if self._scales is None:
            table, session = self.session.table, self.session
            n = table.size
            scales = np.ones(n, dtype=np.float64)
            if session.mode != "none":
                labels = table.labels if table.labels is not None else np.zeros(n, dtype=np.int64)
                for c in np.unique(labels):
                    rows = np.flatnonzero(labels == c)
                    groups = table.groups_of(rows)
                    weights = table.weights_of(rows)
                    mode = "sync" if session.mode == "barycenter" else session.mode
                    scales[rows] = row_scales(groups, mode, weights, min_group_size=session.min_group_size).double().numpy()
            self._scales = scales
        return self._scales

    def loader_class(self, base: type) -> type:
        training = self
        signature = inspect.signature(base)

        class GroupAwareDataLoader(base):
            """``DataLoader`` that draws the expert-training batches fairly."""

            def __init__(self, dataset, *args, **kwargs):
                if training.session.covers(sys._getframe(1).f_code.co_filename):
                    args, kwargs = training.rebuild(signature, dataset, args, kwargs)
                super().__init__(dataset, *args, **kwargs)

        GroupAwareDataLoader.__name__ = base.__name__
        return GroupAwareDataLoader

    def rebuild(self, signature, dataset, args, kwargs):
        """Arguments for the training loader: a recording batch sampler instead of ``shuffle``."""
        table = self.session.table
        try:
            bound = signature.bind(dataset, *args, **kwargs)
        except TypeError:
            return args, kwargs
        given = bound.arguments
        if (
            not given.get("shuffle")
            or given.get("sampler") is not None
            or given.get("batch_sampler") is not None
            or table.size is None
            or len(dataset) != table.size
        ):
            return args, kwargs
        if self.strategy == "sample" and self.session.mode != "none":
            probabilities = torch.as_tensor(self.row_scales() / table.size, dtype=torch.double)
            sampler = torch.utils.data.WeightedRandomSampler(probabilities, num_samples=table.size, replacement=True)
        else:
            sampler = torch.utils.data.RandomSampler(dataset)
        batch_sampler = _RecordingBatchSampler(
            sampler, int(given.get("batch_size", 1) or 1), bool(given.get("drop_last", False)), self._on_batch
        )
        rebuilt = {k: v for k, v in given.items() if k not in ("dataset", "shuffle", "batch_size", "drop_last")}
        rebuilt["batch_sampler"] = batch_sampler
        self.session.summary.note(
            f"expert training loader over {table.size} rows: {self.strategy} ({self.session.mode})"
        )
        return (), rebuilt

    def _on_batch(self, batch: list[int]) -> None:
        session = self.session
        table = session.table
        rows = np.asarray(batch, dtype=np.int64)
        if table.groups is not None and table.labels is not None:
            for c in np.unique(table.labels[rows]):
                chosen = rows[table.labels[rows] == c]
                session.summary.observe(int(c), table.groups_of(chosen), table.class_groups(int(c)))
        if self.strategy == "reweight" and session.mode != "none":
            self._pending.append(batch)
        else:
            session.summary.count("expert_batch")

    def criterion_class(self, base: type) -> type:
        return intercepting_criterion(
            base, self.on_criterion, "``CrossEntropyLoss`` that importance-weights the recorded expert-training batches."
        )

    def on_criterion(self, module, input, target, plain):
        if not self._pending or len(self._pending[0]) != input.shape[0] or module.reduction != "mean":
            return plain(input, target)
        rows = np.asarray(self._pending[0], dtype=np.int64)
        labels = self.session.table.labels
        if labels is not None and not np.array_equal(labels[rows], target.detach().cpu().numpy()):
            return plain(input, target)
        self._pending.popleft()
        per_sample = F.cross_entropy(
            input, target, weight=module.weight, ignore_index=module.ignore_index,
            reduction="none", label_smoothing=module.label_smoothing,
        )
        scales = torch.as_tensor(self.row_scales()[rows], dtype=per_sample.dtype, device=per_sample.device)
        self.session.summary.count("expert_batch")
        return (scales * per_sample).mean()
