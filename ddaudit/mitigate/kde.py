"""Kernel density estimates on embeddings, and inverse-density sample weights.

Cui et al. (ICML 2024) down-weight samples that sit in dense, bias-aligned
clusters of a surrogate's embedding space. The paper leaves the details open;
the choices made here are:

* **Kernel**: isotropic Gaussian, ``K_h(u) = (2 pi h^2)^(-d/2) exp(-|u|^2 / (2 h^2))``.
  A full-covariance kernel (what :class:`scipy.stats.gaussian_kde` uses) needs a
  non-singular covariance, which a few hundred 128-512-d embeddings per class do
  not have; the isotropic kernel is always defined.
* **Bandwidth**: ``h = factor(n, d) * scale`` with the d-dimensional rules
  ``scott = n^(-1/(d+4))`` and ``silverman = (n (d+2) / 4)^(-1/(d+4))``
  (Scott 1992; Silverman 1986, as in scipy). The kernel acts on Euclidean
  distances, and two samples of a class lie about ``sqrt(2 tr Cov)`` apart, so
  the default ``scale`` is the total standard deviation ``sqrt(tr Cov)``
  (``ddof=1``). The textbook per-dimension scale ``sqrt(tr Cov / d)``
  (``scott-dim``, ``silverman-dim``; exactly scipy's estimate when the covariance
  is ``sigma^2 I``) makes the kernel ``sqrt(d)`` times narrower than that
  spacing: each density is then set by the nearest neighbour alone, log
  densities of 128-d surrogate embeddings span hundreds of nats, and the weights
  of a class collapse onto a single sample (effective sample size 1, measured on
  ``cmnist-fg`` with 5 % bias-conflicting samples). A float sets ``h`` directly.
* **Per class**: each sample's density is estimated among the samples of its
  own class (the bias lives inside a class), leave-one-out by default so a
  sample does not count itself.
* **Weights**: ``w_i ∝ p(x_i)^(-power)``; ``power=0`` is uniform, ``1`` the plain
  inverse density, between them a temperature. Normalised to mean 1 within each
  class (the class balance of the matching loss is unchanged) or over all
  samples, optionally capped at ``max_weight`` times the mean with the excess
  spread over the other samples in proportion.

Everything works in log space (log-sum-exp), so densities of 512-d embeddings
never underflow, and pairwise kernels are computed in ``chunk_size x chunk_size``
blocks: memory is bounded by the chunk, never by ``N x N``.

Ablation on the embedded ``cmnist-fg`` preset (4,000 digits, 5 % bias-conflicting;
ConvNetW32 SupCon surrogate, 5 epochs). Ratio: mean weight of conflicting over
aligned samples; ESS: effective sample size ``(sum w)^2 / sum w^2`` per class
(of 400); share: the part of each class's weight on conflicting samples (90 % for
the group-balanced weights synchronized matching implies, whose ESS is 24)::

    setting                      ratio   AUC    ESS    share
    scott (default)               75.4   0.955   10.6   0.80
    silverman                     83.9   0.956    9.8   0.82
    scott-dim (textbook)         171.0   0.567    1.0   0.90   one sample per class
    power 0.5                      8.8   0.968  114.6   0.32
    max_weight 20                 29.6   0.978   35.6   0.61
    no leave-one-out              41.0   0.973   22.5   0.68
    one density over all classes   0.9   0.103  398.9   0.04   conflicting samples
                                                                sit near other classes
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ddaudit.errors import ConfigError, InputError
from ddaudit.mitigate._vector_file import VectorFile

BANDWIDTH_RULES = ("scott", "silverman", "scott-dim", "silverman-dim")
NORMALIZATIONS = ("class", "global")
DEFAULT_CHUNK_SIZE = 2048

ERR_BANDWIDTH = "bandwidth must be 'scott', 'silverman', 'scott-dim', 'silverman-dim' or a positive number; got {value!r}."
ERR_EMBEDDINGS = "embeddings must be a 2-D float tensor (N, D); got shape {shape}."
ERR_QUERIES = "queries must have the same embedding width as the data: {got} vs {want}."
ERR_LABELS = "labels must be a 1-D tensor with one entry per embedding: {got} vs {want}."
ERR_CHUNK = "chunk_size must be a positive integer; got {value!r}."
ERR_NORMALIZE = "normalize must be 'class' or 'global'; got {value!r}."
ERR_POWER = "power must be a finite number >= 0; got {value!r}."
ERR_MAX_WEIGHT = "max_weight must be >= 1 (a multiple of the mean weight); got {value!r}."
ERR_LOO_QUERIES = "leave_one_out needs the queries to be the data itself; pass queries=None."
ERR_DEGENERATE = "all embeddings are identical, so a rule-of-thumb bandwidth is 0; pass a numeric bandwidth."
ERR_MIN_ESS = "min_ess must be a fraction of the class in [0, 1]; got {value!r}."
ERR_NOT_FINITE = "embeddings contain NaN or infinite values; check the surrogate's output."


def bandwidth_factor(n: int, d: int, rule: str = "scott") -> float:
    """The d-dimensional rule-of-thumb factor (Scott or Silverman) that multiplies the data scale."""
    family = rule.removesuffix("-dim")
    if family == "scott" and rule in BANDWIDTH_RULES:
        return float(n) ** (-1.0 / (d + 4))
    if family == "silverman" and rule in BANDWIDTH_RULES:
        return (n * (d + 2) / 4.0) ** (-1.0 / (d + 4))
    raise ConfigError(ERR_BANDWIDTH.format(value=rule))


def data_scale(embeddings: torch.Tensor, *, per_dimension: bool = False) -> float:
    """``sqrt(tr Cov)`` (ddof=1), the spread that distances see; ``/ sqrt(d)`` when *per_dimension*."""
    n, d = embeddings.shape
    if n < 2:
        return 0.0
    chunks = embeddings.split(DEFAULT_CHUNK_SIZE)
    mean = sum(chunk.double().sum(dim=0) for chunk in chunks) / n
    squares = sum(float(((chunk.double() - mean) ** 2).sum()) for chunk in chunks)
    total = squares / (n - 1)
    return math.sqrt(total / d if per_dimension else total)


def select_bandwidth(embeddings: torch.Tensor, rule: str | float = "scott") -> float:
    """Kernel width ``h`` for *embeddings* (N, D) by a named rule, or *rule* itself if a number."""
    if isinstance(rule, bool):
        raise ConfigError(ERR_BANDWIDTH.format(value=rule))
    if isinstance(rule, (int, float)):
        if not math.isfinite(rule) or rule <= 0:
            raise ConfigError(ERR_BANDWIDTH.format(value=rule))
        return float(rule)
    if rule not in BANDWIDTH_RULES:
        raise ConfigError(ERR_BANDWIDTH.format(value=rule))
    n, d = embeddings.shape
    return bandwidth_factor(n, d, rule) * data_scale(embeddings, per_dimension=rule.endswith("-dim"))


def parse_bandwidth(value: str | float) -> str | float:
    """Turn a CLI string (``scott``, ``silverman`` or a number) into a bandwidth argument."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return select_bandwidth(torch.zeros(0, 1), value)
    text = str(value).strip().lower()
    if text in BANDWIDTH_RULES:
        return text
    try:
        number = float(text)
    except ValueError:
        raise ConfigError(ERR_BANDWIDTH.format(value=value)) from None
    return select_bandwidth(torch.zeros(0, 1), number)


def _check_embeddings(embeddings: torch.Tensor) -> torch.Tensor:
    if not isinstance(embeddings, torch.Tensor) or embeddings.dim() != 2:
        shape = tuple(embeddings.shape) if isinstance(embeddings, torch.Tensor) else type(embeddings).__name__
        raise InputError(ERR_EMBEDDINGS.format(shape=shape))
    if not embeddings.is_floating_point():
        embeddings = embeddings.float()
    if not all(bool(torch.isfinite(chunk).all()) for chunk in embeddings.split(DEFAULT_CHUNK_SIZE)):
        raise InputError(ERR_NOT_FINITE)
    return embeddings


def _check_chunk(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(ERR_CHUNK.format(value=chunk_size))
    return chunk_size


def kde_log_density(
    data: torch.Tensor,
    queries: torch.Tensor | None = None,
    *,
    bandwidth: str | float = "scott",
    leave_one_out: bool = False,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Log of the Gaussian KDE of *data* evaluated at *queries* (default: at *data*).

    ``log p(q) = logsumexp_j(-|q - x_j|^2 / (2 h^2)) - log n - (d/2) log(2 pi h^2)``,
    with ``j != i`` and ``n - 1`` in place of ``n`` when ``leave_one_out``.
    Pairwise kernels are built ``chunk_size x chunk_size`` at a time and folded
    into a running log-sum-exp, so peak extra memory is ``O(chunk_size^2)``.
    Runs on the device and in the dtype of *data*. Returns a (M,) tensor (NaN
    when leave-one-out leaves no other sample).
    """
    data = _check_embeddings(data)
    chunk_size = _check_chunk(chunk_size)
    if leave_one_out and queries is not None and queries is not data:
        raise ConfigError(ERR_LOO_QUERIES)
    queries = data if queries is None else _check_embeddings(queries).to(data.device, data.dtype)
    if queries.shape[1] != data.shape[1]:
        raise InputError(ERR_QUERIES.format(got=queries.shape[1], want=data.shape[1]))
    n, d = data.shape
    n_eff = n - 1 if leave_one_out else n
    if n_eff < 1:
        return torch.full((queries.shape[0],), float("nan"), dtype=data.dtype, device=data.device)
    h = select_bandwidth(data, bandwidth)
    if h <= 0:
        raise InputError(ERR_DEGENERATE)
    scale = -0.5 / (h * h)
    data_sq = (data * data).sum(dim=1)
    out = torch.empty(queries.shape[0], dtype=data.dtype, device=data.device)
    for q_start in range(0, queries.shape[0], chunk_size):
        q = queries[q_start : q_start + chunk_size]
        q_sq = (q * q).sum(dim=1, keepdim=True)
        running = torch.full((q.shape[0],), float("-inf"), dtype=data.dtype, device=data.device)
        for r_start in range(0, n, chunk_size):
            r = data[r_start : r_start + chunk_size]
            block = torch.addmm(q_sq + data_sq[r_start : r_start + chunk_size], q, r.T, alpha=-2.0)
            block.clamp_(min=0.0).mul_(scale)
            if leave_one_out:
                _mask_self(block, q_start, r_start)
            running = torch.logaddexp(running, torch.logsumexp(block, dim=1))
        out[q_start : q_start + q.shape[0]] = running
    return out - (math.log(n_eff) + 0.5 * d * math.log(2.0 * math.pi * h * h))


def _mask_self(block: torch.Tensor, q_start: int, r_start: int) -> None:
    """Set the kernel of each sample with itself to -inf inside one block."""
    rows, cols = block.shape
    lo, hi = max(q_start, r_start), min(q_start + rows, r_start + cols)
    if lo < hi:
        idx = torch.arange(lo, hi, device=block.device)
        block[idx - q_start, idx - r_start] = float("-inf")


def class_log_density(
    embeddings: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    bandwidth: str | float = "scott",
    leave_one_out: bool = True,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[torch.Tensor, dict[int, float]]:
    """Per-sample log density among the samples of the same class (all samples if no labels).

    Returns ``(log_density (N,), bandwidths {class: h})``. A class whose density is
    undefined (one sample with leave-one-out, or identical embeddings) gets log
    density 0 for all its samples, i.e. uniform weights; its bandwidth is 0.
    *progress* is called as ``progress(done_classes, total_classes)``.
    """
    embeddings = _check_embeddings(embeddings)
    if labels is None:
        labels = torch.zeros(embeddings.shape[0], dtype=torch.long)
    if labels.dim() != 1 or labels.shape[0] != embeddings.shape[0]:
        raise InputError(ERR_LABELS.format(got=tuple(labels.shape), want=embeddings.shape[0]))
    labels = labels.to(embeddings.device)
    log_density = torch.zeros(embeddings.shape[0], dtype=embeddings.dtype, device=embeddings.device)
    bandwidths: dict[int, float] = {}
    classes = torch.unique(labels).tolist()
    for done, cls in enumerate(classes, start=1):
        index = torch.nonzero(labels == cls).flatten()
        rows = embeddings[index]
        h = select_bandwidth(rows, bandwidth) if rows.shape[0] > 1 else 0.0
        if rows.shape[0] - int(leave_one_out) >= 1 and h > 0:
            log_density[index] = kde_log_density(
                rows, bandwidth=h, leave_one_out=leave_one_out, chunk_size=chunk_size
            )
        else:
            h = 0.0
        bandwidths[int(cls)] = h
        if progress is not None:
            progress(done, len(classes))
    return log_density, bandwidths


def check_weight_options(
    *, power: float = 1.0, normalize: str = "class", max_weight: float | None = None, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> None:
    """Validate weight options up front (before a surrogate is trained), as ConfigErrors."""
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not math.isfinite(power) or power < 0:
        raise ConfigError(ERR_POWER.format(value=power))
    if normalize not in NORMALIZATIONS:
        raise ConfigError(ERR_NORMALIZE.format(value=normalize))
    if max_weight is not None and not (max_weight >= 1):
        raise ConfigError(ERR_MAX_WEIGHT.format(value=max_weight))
    _check_chunk(chunk_size)


def inverse_density_weights(
    log_density: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    power: float = 1.0,
    normalize: str = "class",
    max_weight: float | None = None,
) -> torch.Tensor:
    """``w_i ∝ p_i^(-power)``, normalised to mean 1 per class (or overall), optionally capped.

    Computed as a softmax of ``-power * log p`` so that density ratios of
    ``exp(100)`` stay finite. With ``max_weight`` no weight exceeds that multiple
    of the mean; the mass cut off is spread over the others in proportion.
    """
    check_weight_options(power=power, normalize=normalize, max_weight=max_weight)
    if labels is not None and (labels.dim() != 1 or labels.shape[0] != log_density.shape[0]):
        raise InputError(ERR_LABELS.format(got=tuple(labels.shape), want=log_density.shape[0]))
    logits = -float(power) * log_density.double()
    weights = torch.empty_like(logits)
    if normalize == "global" or labels is None:
        partition = [torch.arange(logits.shape[0], device=logits.device)]
    else:
        labels = labels.to(logits.device)
        partition = [torch.nonzero(labels == c).flatten() for c in torch.unique(labels).tolist()]
    for index in partition:
        w = torch.softmax(logits[index], dim=0) * index.numel()
        if max_weight is not None:
            w = _cap_weights(w, float(max_weight))
        weights[index] = w
    return weights.to(torch.float32)


def _cap_weights(weights: torch.Tensor, cap: float) -> torch.Tensor:
    """Scale the uncapped weights by ``t`` so that ``sum(min(t w, cap)) = n`` (water-filling)."""
    n = weights.numel()
    if n == 0 or float(weights.max()) <= cap:
        return weights
    ordered, _ = torch.sort(weights, descending=True)
    rest = torch.flip(torch.cumsum(torch.flip(ordered, [0]), 0), [0])
    for k in range(1, n):
        t = (n - cap * k) / float(rest[k])
        if t * float(ordered[k]) <= cap:
            return torch.clamp(weights * t, max=cap)
    return torch.ones_like(weights)


def effective_sample_size(weights: torch.Tensor, labels: torch.Tensor | None = None) -> dict[int, float]:
    """Kish's ``(sum w)^2 / sum w^2`` per class: how many samples the weights really use.

    A label-free check that weights have not collapsed onto a few samples
    (1 means a single sample carries the class; ``n_c`` means uniform weights).
    """
    weights = weights.detach().double().cpu()
    labels = torch.zeros(weights.shape[0], dtype=torch.long) if labels is None else labels.detach().cpu()
    if labels.dim() != 1 or labels.shape[0] != weights.shape[0]:
        raise InputError(ERR_LABELS.format(got=tuple(labels.shape), want=weights.shape[0]))
    sizes = {}
    for cls in torch.unique(labels).tolist():
        w = weights[labels == cls]
        squares = float((w * w).sum())
        sizes[int(cls)] = float(w.sum()) ** 2 / squares if squares > 0 else 0.0
    return sizes


def median_ess_fraction(weights: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """Median over classes of the effective sample size as a fraction of the class's size."""
    labels = torch.zeros(weights.shape[0], dtype=torch.long) if labels is None else labels.detach().cpu()
    sizes = effective_sample_size(weights, labels)
    counts = torch.bincount(labels)
    fractions = [sizes[c] / int(counts[c]) for c in sizes]
    return float(statistics.median(fractions)) if fractions else float("nan")


def power_for_ess(
    log_density: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    min_ess: float = 0.05,
    max_power: float = 1.0,
    normalize: str = "class",
    max_weight: float | None = None,
    steps: int = 30,
) -> float:
    """The largest power in ``[0, max_power]`` whose weights keep the median ESS at least *min_ess* of a class.

    Label-free tempering: the effective sample size of ``w ∝ p^(-power)`` falls
    as the power grows (the Rényi-2 entropy of a Gibbs distribution decreases
    with its inverse temperature), so bisection finds the power at which the
    median class keeps ``min_ess`` of its images in effect. Power 0 (uniform
    weights) always qualifies.
    """
    if not (isinstance(min_ess, (int, float)) and 0 <= min_ess <= 1):
        raise ConfigError(ERR_MIN_ESS.format(value=min_ess))

    def ess(power: float) -> float:
        weights = inverse_density_weights(log_density, labels, power=power, normalize=normalize, max_weight=max_weight)
        return median_ess_fraction(weights, labels)

    if ess(max_power) >= min_ess:
        return float(max_power)
    low, high = 0.0, float(max_power)
    for _ in range(steps):
        middle = 0.5 * (low + high)
        if ess(middle) >= min_ess:
            low = middle
        else:
            high = middle
    return low


def kde_weights(
    embeddings: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    bandwidth: str | float = "scott",
    power: float = 1.0,
    leave_one_out: bool = True,
    per_class: bool = True,
    normalize: str = "class",
    max_weight: float | None = None,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> torch.Tensor:
    """Cui et al.-style sample weights: normalised inverse KDE density of each embedding.

    ``embeddings`` (N, D) and class ``labels`` (N,) in dataset order; returns
    float32 weights (N,) on the embeddings' device, mean 1 per class by default.
    """
    log_density, _ = class_log_density(
        embeddings,
        labels if per_class else None,
        bandwidth=bandwidth,
        leave_one_out=leave_one_out,
        chunk_size=chunk_size,
    )
    return inverse_density_weights(
        log_density, labels, power=power, normalize=normalize, max_weight=max_weight
    )


#: The file ``--weights`` and ``fair_matching(mode="weights")`` consume: float32 weights in training order.
WEIGHTS_FILE = VectorFile("weights", floating=True, written_by="ddaudit weights --real PRESET -o FILE")
ERR_FILE_EXISTS = WEIGHTS_FILE.exists_message
ERR_FILE_MISSING = WEIGHTS_FILE.missing_message
ERR_FILE_CONTENT = WEIGHTS_FILE.content_message


def save_weights(path: str | Path, weights: torch.Tensor, **fields: Any) -> Path:
    """Write ``{"weights", "labels", "settings", "dataset"}`` aligned with the dataset's training order.

    ``fields`` are those of :meth:`~ddaudit.mitigate._vector_file.VectorFile.save`:
    ``settings`` and ``dataset`` (required), ``labels``, ``recovery`` (e.g.
    :func:`~ddaudit.mitigate.recovery.weight_recovery` when true groups were
    known) and ``force``.
    """
    return WEIGHTS_FILE.save(path, weights, **fields)


def load_weights(path: str | Path) -> dict:
    """Read a weights file written by :func:`save_weights` (safely: ``weights_only=True``)."""
    return WEIGHTS_FILE.load(path)
