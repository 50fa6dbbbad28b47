"""Pseudo-groups: protected groups inferred from surrogate embeddings, for users without labels.

FairDD (Table 18) reports that synchronized matching with DBSCAN pseudo-labels
does as well on C-MNIST as with the true colours (Acc / DEO_M / DEO_A 94.77 /
12.38 / 6.80 against 94.61 / 17.04 / 7.95, DM, IPC 10). Here each class is
clustered on its own, because a bias lives inside a class: the bias-aligned
samples form one dense cluster and bias-conflicting samples sit apart from it.

* ``dbscan`` (default): ``eps`` defaults to ``eps_scale`` times the median
  pairwise distance among the class's embeddings (estimated on at most
  ``MEDIAN_SAMPLE`` of them), i.e. two samples are neighbours when they are
  closer than a typical pair of their class. Points DBSCAN calls noise are
  samples that resemble nobody else in their class: each becomes a group of its
  own, so synchronized matching gives it the weight of a whole group, as it
  would a rare true group.
* ``kmeans``: ``n_groups`` clusters per class, for users who know how many
  groups to expect.
* ``prediction``: the embeddings are a biased classifier's logits
  (:mod:`ddaudit.mitigate.bias_model`); a sample's group is the class that
  classifier predicts. The shortcut names the attribute: a red 7 is called a
  "0" when 0s are mostly red, so inside class 7 the predictions split the
  colours, without a number of groups to choose. With two classes this is Just
  Train Twice's error set (right vs wrong). Adjusted Rand index against the true
  colours on the embedded presets (4,000 digits, 5 % conflicting, ConvNetW32
  GCE classifier, plateau stop): 0.96 (``cmnist-fg``), 0.96-0.97 (``cmnist-bg``).

The median rule separates a dominant group (above roughly 70 % of a class, so
that most pairs lie inside it) from the rest: that is where bias hurts. A class
whose groups are about equally large comes out as one group, which for matching
is the vanilla target; harmless, since such a class is not biased. Pass ``eps``
or use ``kmeans`` to split balanced groups anyway. On the embedded ``cmnist-fg``
preset (5 % conflicting, ConvNetW32 surrogate) the adjusted Rand index against
the true colours is 0.87 on all 4,000 digits (0.90 on 600 of them).

Group ids are local to a class and ordered by size: group 0 is the largest
(the presumed bias-aligned group) of *that* class; group 0 of two classes need
not be the same attribute value. Matching modes only compare groups within a
class, so that is all they need.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ddaudit.errors import ConfigError, InputError
from ddaudit.mitigate._vector_file import VectorFile

METHODS = ("dbscan", "kmeans", "prediction")
MEDIAN_SAMPLE = 2000

ERR_METHOD = "pseudo-group method must be 'dbscan', 'kmeans' or 'prediction'; got {value!r}."
ERR_N_GROUPS = "method 'kmeans' needs n_groups, a whole number >= 1; got {value!r}."
ERR_POSITIVE = "{name} must be a positive number; got {value!r}."
ERR_MIN_SAMPLES = "min_samples must be a whole number >= 1; got {value!r}."
ERR_SHAPES = "embeddings must be (N, D) and labels (N,) with the same N; got {embeddings} and {labels}."
ERR_NOT_FINITE = "embeddings contain NaN or infinite values; check the surrogate's output."


def median_pairwise_distance(embeddings: torch.Tensor, seed: int = 0) -> float:
    """Median Euclidean distance between distinct samples (a seeded subsample above MEDIAN_SAMPLE)."""
    n = embeddings.shape[0]
    if n < 2:
        return 0.0
    if n > MEDIAN_SAMPLE:
        index = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:MEDIAN_SAMPLE]
        embeddings = embeddings[index]
        n = MEDIAN_SAMPLE
    distances = torch.cdist(embeddings.double(), embeddings.double())
    upper = torch.triu_indices(n, n, offset=1)
    return float(distances[upper[0], upper[1]].median())


def _size_ordered(raw: np.ndarray) -> np.ndarray:
    """Relabel cluster ids 0..K-1 by decreasing size (ties by first appearance); noise (-1) becomes singletons."""
    labels = raw.copy()
    next_id = labels.max() + 1 if labels.size else 0
    for i in np.flatnonzero(labels < 0):
        labels[i] = next_id
        next_id += 1
    ids, first, counts = np.unique(labels, return_index=True, return_counts=True)
    order = sorted(range(len(ids)), key=lambda k: (-counts[k], first[k]))
    mapping = {ids[k]: rank for rank, k in enumerate(order)}
    return np.array([mapping[v] for v in labels], dtype=np.int64)


def check_pseudo_group_options(
    *, method: str = "dbscan", eps: float | None = None, eps_scale: float = 1.0, min_samples: int = 2,
    n_groups: int | None = None,
) -> None:
    """Validate clustering options up front (before a surrogate is trained), as ConfigErrors."""
    if method not in METHODS:
        raise ConfigError(ERR_METHOD.format(value=method))
    for name, value in (("eps", eps), ("eps_scale", eps_scale)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ConfigError(ERR_POSITIVE.format(name=name, value=value))
    if isinstance(min_samples, bool) or not isinstance(min_samples, int) or min_samples < 1:
        raise ConfigError(ERR_MIN_SAMPLES.format(value=min_samples))
    if method == "kmeans" and (isinstance(n_groups, bool) or not isinstance(n_groups, int) or n_groups < 1):
        raise ConfigError(ERR_N_GROUPS.format(value=n_groups))


def pseudo_groups(
    embeddings: torch.Tensor,
    labels: torch.Tensor,
    *,
    method: str = "dbscan",
    eps: float | None = None,
    eps_scale: float = 1.0,
    min_samples: int = 2,
    n_groups: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> torch.Tensor:
    """Cluster the embeddings of each class; returns int64 group ids (N,) in dataset order.

    ``eps`` (absolute) overrides the median rule; ``min_samples`` is DBSCAN's
    (the point itself included). *progress* is called as ``progress(done, total)``
    over classes.
    """
    from sklearn.cluster import DBSCAN, KMeans

    check_pseudo_group_options(method=method, eps=eps, eps_scale=eps_scale, min_samples=min_samples, n_groups=n_groups)
    embeddings = embeddings.detach().cpu().float()
    labels = labels.detach().cpu().long()
    if embeddings.dim() != 2 or labels.dim() != 1 or embeddings.shape[0] != labels.shape[0]:
        raise InputError(ERR_SHAPES.format(embeddings=tuple(embeddings.shape), labels=tuple(labels.shape)))
    if not bool(torch.isfinite(embeddings).all()):
        raise InputError(ERR_NOT_FINITE)
    groups = np.zeros(labels.shape[0], dtype=np.int64)
    classes = torch.unique(labels).tolist()
    for done, cls in enumerate(classes, start=1):
        rows = torch.nonzero(labels == cls).flatten()
        points = embeddings[rows]
        if method == "prediction":
            raw = points.argmax(dim=1).numpy()
        elif rows.numel() < 2:
            raw = np.zeros(rows.numel(), dtype=np.int64)
        elif method == "kmeans":
            k = min(n_groups, rows.numel())
            raw = KMeans(n_clusters=k, random_state=seed, n_init=4).fit_predict(points.numpy())
        else:
            radius = eps if eps is not None else eps_scale * median_pairwise_distance(points, seed)
            if radius <= 0:
                raw = np.zeros(rows.numel(), dtype=np.int64)
            else:
                raw = DBSCAN(eps=radius, min_samples=min_samples).fit_predict(points.numpy())
        groups[rows.numpy()] = _size_ordered(np.asarray(raw, dtype=np.int64))
        if progress is not None:
            progress(done, len(classes))
    return torch.from_numpy(groups)


#: The file ``--groups`` accepts: int64 pseudo-group ids in training order.
GROUPS_FILE = VectorFile("groups", floating=False, written_by="ddaudit weights --pseudo-groups FILE")
ERR_FILE_EXISTS = GROUPS_FILE.exists_message
ERR_FILE_MISSING = GROUPS_FILE.missing_message
ERR_FILE_CONTENT = GROUPS_FILE.content_message


def save_groups(path: str | Path, groups: torch.Tensor, **fields: Any) -> Path:
    """Write ``{"groups", "labels", "settings", "dataset"[, "recovery"]}``, the file ``--groups`` accepts.

    ``fields`` are those of :meth:`~ddaudit.mitigate._vector_file.VectorFile.save` (``settings``,
    ``dataset``, ``labels``, ``recovery``, ``force``).
    """
    return GROUPS_FILE.save(path, groups, **fields)


def load_groups(path: str | Path) -> dict:
    """Read a groups file written by :func:`save_groups` (safely: ``weights_only=True``)."""
    return GROUPS_FILE.load(path)
