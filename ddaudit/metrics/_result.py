"""One builder from (labels, groups, predictions of E evaluators) to every audit metric.

Conventions:

* every metric is computed per evaluator, then summarised by its ``mean`` and
  its *population* standard deviation (``ddof=0``), the dataset-distillation
  convention (DatasetCondensation and FairDD print ``np.std``);
* ``ci`` of the count-based metrics and of bias amplification comes from a
  stratified, paired test-set bootstrap of the evaluators' mean (see
  :mod:`._uncertainty`). By default it is the *basic* interval, which corrects
  the upward bias of max/min statistics such as DEO on small cells; with
  ``interval="percentile"`` it is the plain percentile interval. Either may
  exclude the point estimate when that bias is large, and a warning says so.
  The fairlearn one-vs-rest views are too slow to recompute per resample, so
  their ``ci`` is the t-interval over evaluators (``ci_method`` says which);
* ``interval`` (with ``interval_method``, ``interval_test``, ``interval_margin``
  and, for disparities, ``interval_strict``) is what gates decide on, for every
  metric with an interval rule: score bounds that read every cell, with test-set
  noise and evaluator spread (see :mod:`._intervals`); unlike the bootstrap it
  never shrinks on small cells;
* ``ci_models`` is always that t-interval over evaluators (``None`` for one);
  with ``n_boot=0`` it is also every metric's ``ci``;
* NaN means undefined, never zero: no cell or class can define the metric
  (e.g. DEO when every class has fewer than 2 groups), no training data for
  bias amplification, or no interval at all (one evaluator and no bootstrap).
  Each case adds a line to ``warnings``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ddaudit.errors import ConfigError, InputError

from . import _messages as msg
from . import _catalogue  # noqa: F401 - registers every metric in the table
from ._counts import cell_accuracy, cell_ids, count_table, predicted_table, small_cells
from ._directional import pair_signs, row_scores
from ._disparity import class_gaps, group_accuracy
from ._fairlearn_views import one_vs_rest_demographic_parity, one_vs_rest_equalized_odds
from ._inputs import as_count, as_labels, as_predictions
from ._interval_table import metric_intervals
from ._intervals import disagreement
from ._registry import METRICS, CountTables, bootstrapped_names, metric_names
from ._uncertainty import basic_interval, percentile_interval, stratified_resample_sums, t_interval

#: Every metric :func:`compute_metrics` reports, in report order (the metric table's order).
METRIC_NAMES = metric_names()
#: Metrics whose interval comes from the test-set bootstrap.
BOOTSTRAPPED = bootstrapped_names()
#: Bootstrap interval kinds :func:`compute_metrics` accepts.
INTERVALS = ("basic", "percentile")
#: How many cells a warning names before it says "and N more".
CELLS_NAMED_IN_WARNINGS = 6


@dataclass
class MetricsResult:
    """All metrics of one audit; every field is plain Python data (JSON-ready apart from NaN).

    ``metrics[name]`` has ``mean``, ``std`` (ddof=0), ``ci`` ``[lo, hi]``,
    ``ci_method`` (``"bootstrap-basic"``, ``"bootstrap-percentile"``, ``"t"`` or ``None``), ``ci_models`` and
    ``per_evaluator``. ``cells`` has one entry per (class, group) with its test
    ``count``, mean ``accuracy`` and ``accuracy_std`` over evaluators (``None``
    when empty) and whether it is ``small`` (below ``min_group_size``).
    ``per_class`` holds each class's mean group gap and one-vs-rest fairlearn
    values; ``per_group`` each group's pooled accuracy.
    """

    metrics: dict[str, dict]
    cells: list[dict]
    per_class: list[dict]
    per_group: list[dict]
    warnings: list[str]
    small_cells: list[tuple[int, int, int]]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["small_cells"] = [list(cell) for cell in self.small_cells]
        return out


def _check_n_boot(n_boot) -> None:
    if isinstance(n_boot, bool) or not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise ConfigError(msg.BAD_N_BOOT.format(value=n_boot))


def _check_settings(n_boot, confidence, min_group_size, interval) -> None:
    _check_n_boot(n_boot)
    if not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ConfigError(msg.BAD_CONFIDENCE.format(value=confidence))
    if isinstance(min_group_size, bool) or not isinstance(min_group_size, (int, np.integer)) or min_group_size < 0:
        raise ConfigError(msg.BAD_MIN_GROUP_SIZE.format(value=min_group_size))
    if interval not in INTERVALS:
        raise ConfigError(msg.BAD_INTERVAL.format(value=interval, choices=", ".join(INTERVALS)))


def _names(names, count: int, name: str) -> list[str]:
    if names is None:
        return [str(i) for i in range(count)]
    names = [str(n) for n in names]
    if len(names) != count:
        raise InputError(msg.NAMES_LENGTH.format(name=name, found=len(names), expected=count))
    return names


def _evaluate(tables: CountTables, names, evaluators_axis: tuple[int, ...]) -> dict[str, np.ndarray]:
    """Each named metric of *tables*; a metric the tables cannot define is NaN (shape ``evaluators_axis``)."""
    out = {}
    for name in names:
        value = METRICS[name].function(tables)
        out[name] = np.full(evaluators_axis, np.nan) if value is None else np.asarray(value, dtype=np.float64)
    return out


def _validated(y_true, groups, predictions, num_classes, num_groups, train_y, train_a):
    num_classes = as_count(num_classes, "num_classes")
    num_groups = as_count(num_groups, "num_groups")
    y = as_labels(y_true, "y_true", num_classes)
    if y.shape[0] == 0:
        raise InputError(msg.EMPTY_TEST_SET)
    a = as_labels(groups, "groups", num_groups, length=y.shape[0])
    pred = as_predictions(predictions, num_classes, y.shape[0])
    if (train_y is None) != (train_a is None):
        raise InputError(msg.TRAIN_PAIR)
    signs = None
    if train_y is not None:
        ty = as_labels(train_y, "train_y", num_classes)
        ta = as_labels(train_a, "train_a", num_groups)
        if ta.shape[0] != ty.shape[0]:
            raise InputError(msg.TRAIN_LENGTH_MISMATCH.format(labels=ty.shape[0], groups=ta.shape[0]))
        if ty.shape[0] > 0:
            signs = pair_signs(ty, ta, a, num_classes, num_groups)
    return y, a, pred, num_classes, num_groups, signs


def _bootstrap(y, a, pred, total, signs, num_classes, num_groups, n_boot, seed, empty_as_zero):
    evaluators = pred.shape[0]
    values = [(pred == y[None, :]).astype(np.float64)]
    defined = int(np.count_nonzero(signs)) if signs is not None else 0
    if defined:
        values.append(row_scores(y, a, pred, signs))
    cells = cell_ids(y, a, num_groups)
    means = {name: [] for name in BOOTSTRAPPED}
    for sums in stratified_resample_sums(np.concatenate(values), cells, num_classes * num_groups, n_boot, seed):
        correct = sums[:, :evaluators].reshape(sums.shape[0], evaluators, num_classes, num_groups)
        tables = CountTables(
            correct, total, empty_as_zero=empty_as_zero,
            bias_amplification=sums[:, evaluators:].sum(axis=2) / defined if defined else None,
        )
        for name in BOOTSTRAPPED:
            value = METRICS[name].function(tables)
            if value is not None:
                means[name].append(np.asarray(value, dtype=np.float64).mean(axis=1))
    return {name: np.concatenate(chunks) for name, chunks in means.items() if chunks}


def bootstrap_metric_means(y_true, groups, predictions, *, num_classes: int, num_groups: int,
                           train_y=None, train_a=None, n_boot: int = 1000, seed: int = 0,
                           empty_as_zero: bool = False) -> dict[str, np.ndarray]:
    """Bootstrap distribution ``(n_boot,)`` of the evaluators' mean of each count-based metric.

    Test samples are resampled within each (class, group) cell, with the same
    resample for every evaluator; ``bias_amplification`` is included when
    training labels and groups are given (its ``y_at`` stays fixed: it is a
    property of the training data, not of the test sample).
    """
    _check_n_boot(n_boot)
    y, a, pred, num_classes, num_groups, signs = _validated(
        y_true, groups, predictions, num_classes, num_groups, train_y, train_a)
    total = np.bincount(cell_ids(y, a, num_groups), minlength=num_classes * num_groups)
    total = total.reshape(num_classes, num_groups)
    return _bootstrap(y, a, pred, total, signs, num_classes, num_groups, n_boot, seed, empty_as_zero)


def _summary(name: str, per_evaluator: np.ndarray, boot: np.ndarray | None, confidence: float,
             interval: str) -> dict:
    per_evaluator = np.asarray(per_evaluator, dtype=np.float64)
    mean = float(per_evaluator.mean())
    bounds = METRICS[name].bounds
    models = t_interval(per_evaluator, confidence, bounds)
    if boot is not None and interval == "basic":
        ci, method = basic_interval(boot, mean, confidence, bounds), "bootstrap-basic"
    elif boot is not None:
        ci, method = percentile_interval(boot, confidence), "bootstrap-percentile"
    elif models is not None:
        ci, method = list(models), "t"
    else:
        ci, method = [float("nan"), float("nan")], None
    if np.isnan(ci[0]):
        method = None
    return {
        "mean": mean,
        "std": float(per_evaluator.std(ddof=0)),
        "ci": ci,
        "ci_method": method,
        "ci_models": models,
        "per_evaluator": [float(v) for v in per_evaluator],
    }


def _optional(value) -> float | None:
    return None if value is None or np.isnan(value) else float(value)


def _cell_list(cells: list[tuple[int, int, int]], names) -> str:
    class_names, group_names = names
    named = [f"class {class_names[k]}/group {group_names[g]} (n={n})" for k, g, n in cells[:CELLS_NAMED_IN_WARNINGS]]
    more = len(cells) - len(named)
    return ", ".join(named) + (f" and {more} more" if more > 0 else "")


def compute_metrics(y_true, groups, predictions, *, num_classes: int, num_groups: int,
                    train_y=None, train_a=None, n_boot: int = 1000, confidence: float = 0.95,
                    seed: int = 0, min_group_size: int = 20, class_names=None, group_names=None,
                    empty_as_zero: bool = False, interval: str = "basic") -> MetricsResult:
    """Every fairness metric of ``predictions`` ``(E, N)`` (or ``(N,)``) on a group-labelled test set.

    Parameters
    ----------
    y_true, groups : array-like of int, shape (N,)
        True classes and protected groups of the real test set.
    predictions : array-like of int, shape (E, N) or (N,)
        Predicted classes, one row per evaluator.
    train_y, train_a : array-like of int, optional
        Real training labels and groups; directional bias amplification needs
        them (it is NaN without).
    n_boot : int
        Bootstrap resamples for ``ci`` (0 skips the bootstrap; ``ci`` is then
        the t-interval over evaluators).
    confidence : float
        Coverage of every interval.
    seed : int
        Seed of the bootstrap's ``numpy.random.default_rng``.
    min_group_size : int
        Cells with fewer test samples are flagged ``small`` and named in a
        warning; they still count in every metric.
    empty_as_zero : bool
        Count empty cells as accuracy 0, as FairDD does, to compare with its
        published DEO numbers.
    interval : {"basic", "percentile"}
        Kind of bootstrap interval; "basic" corrects the bias of max/min
        statistics (DEO_M, worst-group accuracy) on small cells.
    """
    _check_settings(n_boot, confidence, min_group_size, interval)
    y, a, pred, num_classes, num_groups, signs = _validated(
        y_true, groups, predictions, num_classes, num_groups, train_y, train_a)
    class_names = _names(class_names, num_classes, "class_names")
    group_names = _names(group_names, num_groups, "group_names")

    correct, total = count_table(y, a, pred, num_classes, num_groups)
    eod_by_class, dpd_by_class = _fairlearn_views(y, a, pred, num_classes)
    defined_pairs = int(np.count_nonzero(signs)) if signs is not None else 0
    tables = CountTables(
        correct, total, predicted=predicted_table(a, pred, num_classes, num_groups),
        eod_by_class=eod_by_class, dpd_by_class=dpd_by_class, empty_as_zero=empty_as_zero,
        bias_amplification=row_scores(y, a, pred, signs).sum(axis=1) / defined_pairs if defined_pairs else None,
        bias_amplification_cells=_bias_amplification_cells(y, a, pred, signs, defined_pairs, num_classes,
                                                           num_groups) if defined_pairs else None,
    )
    per_evaluator = _evaluate(tables, METRIC_NAMES, (pred.shape[0],))

    boot = _bootstrap(y, a, pred, total, signs, num_classes, num_groups, n_boot, seed, empty_as_zero) if n_boot else {}
    metrics = {name: _summary(name, per_evaluator[name], boot.get(name), confidence, interval)
               for name in METRIC_NAMES}
    for name, fields in metric_intervals(correct, total, confidence, empty_as_zero=empty_as_zero,
                                         predicted=tables.predicted, bias_amplification=tables.bias_amplification,
                                         bias_amplification_cells=tables.bias_amplification_cells,
                                         disagreement=_disagreement(y, a, pred, num_classes, num_groups)).items():
        metrics[name].update(fields)  # the gating interval: score bounds plus evaluator spread
    gaps = class_gaps(cell_accuracy(correct, total, empty_as_zero=empty_as_zero))
    flagged = small_cells(total, min_group_size)
    names = (class_names, group_names)
    notes = _warnings(metrics, pred.shape[0], flagged, min_group_size, gaps, eod_by_class, dpd_by_class,
                      signs, names)
    settings = {
        "num_evaluators": int(pred.shape[0]),
        "n_boot": int(n_boot),
        "confidence": float(confidence),
        "seed": int(seed),
        "min_group_size": int(min_group_size),
        "empty_as_zero": bool(empty_as_zero),
        "std_ddof": 0,
        "interval": interval,
        "bootstrap": "test set resampled within (class, group) cells, same resample for every evaluator",
    }
    return MetricsResult(
        metrics=metrics,
        cells=_cell_rows(correct, total, min_group_size, names),
        per_class=_class_rows(total, gaps, eod_by_class, dpd_by_class, class_names),
        per_group=_group_rows(correct, total, group_names),
        warnings=notes,
        small_cells=flagged,
        settings=settings,
    )


def _disagreement(y, a, pred, num_classes, num_groups):
    """Per cell, how much the evaluators' correctness varies image by image (``None`` for one evaluator)."""
    shares = disagreement(pred == y[None, :], cell_ids(y, a, num_groups), num_classes * num_groups)
    return None if shares is None else shares.reshape(num_classes, num_groups)


def _bias_amplification_cells(y, a, pred, signs, defined_pairs, num_classes, num_groups):
    """``(sums (E, K, G), weights (K, G))``: bias amplification is ``sum(weights * sums)`` plus a constant.

    Per test image the random part of its score is ``signs[a, yhat]`` (in
    ``[-1, 1]``); its weight ``1 / (#{A = a} * pairs)`` is fixed by the test set.
    """
    cells = cell_ids(y, a, num_groups)
    scores = signs[a[None, :], pred].astype(np.float64)
    sums = np.stack([np.bincount(cells, weights=row, minlength=num_classes * num_groups) for row in scores])
    group_size = np.bincount(a, minlength=num_groups).astype(np.float64)
    weight = np.where(group_size > 0, 1.0 / (np.maximum(group_size, 1) * defined_pairs), 0.0)
    return sums.reshape(-1, num_classes, num_groups), np.broadcast_to(weight, (num_classes, num_groups)).copy()


def _fairlearn_views(y, a, pred, num_classes) -> tuple[np.ndarray, np.ndarray]:
    """Per-evaluator, per-class one-vs-rest equalized odds and demographic parity, each ``(E, K)``."""
    eod = np.array([one_vs_rest_equalized_odds(y, a, p, num_classes)[1] for p in pred])
    dpd = np.array([one_vs_rest_demographic_parity(y, a, p, num_classes)[1] for p in pred])
    return eod, dpd


def _cell_rows(correct, total, min_group_size, names) -> list[dict]:
    class_names, group_names = names
    acc = cell_accuracy(correct, total)
    return [
        {
            "class": k,
            "group": g,
            "class_name": class_names[k],
            "group_name": group_names[g],
            "count": int(total[k, g]),
            "accuracy": _optional(acc[:, k, g].mean()),
            "accuracy_std": _optional(acc[:, k, g].std(ddof=0)),
            "small": bool(total[k, g] < min_group_size),
        }
        for k in range(total.shape[0]) for g in range(total.shape[1])
    ]


def _class_rows(total, gaps, eod_by_class, dpd_by_class, class_names) -> list[dict]:
    return [
        {
            "class": k,
            "class_name": class_names[k],
            "count": int(total[k].sum()),
            "groups_present": int(np.count_nonzero(total[k])),
            "gap": _optional(gaps[:, k].mean()),
            "gap_std": _optional(gaps[:, k].std(ddof=0)),
            "equalized_odds_difference": _optional(eod_by_class[:, k].mean()),
            "demographic_parity_difference": _optional(dpd_by_class[:, k].mean()),
        }
        for k in range(total.shape[0])
    ]


def _group_rows(correct, total, group_names) -> list[dict]:
    pooled = group_accuracy(correct, total)
    return [
        {
            "group": g,
            "group_name": group_names[g],
            "count": int(total[:, g].sum()),
            "accuracy": _optional(pooled[:, g].mean()),
        }
        for g in range(total.shape[1])
    ]


def _warnings(metrics, evaluators, flagged, min_group_size, gaps, eod_by_class, dpd_by_class,
              signs, names) -> list[str]:
    class_names, _ = names
    notes = []
    if evaluators == 1:
        notes.append(msg.SINGLE_EVALUATOR)
    empty = [cell for cell in flagged if cell[2] == 0]
    small = [cell for cell in flagged if cell[2] > 0]
    if empty:
        notes.append(msg.EMPTY_CELLS.format(count=len(empty), cells=_cell_list(empty, names)))
    if small:
        notes.append(msg.SMALL_CELLS.format(count=len(small), min_size=min_group_size,
                                            cells=_cell_list(small, names)))
    without_gap = [class_names[k] for k in np.nonzero(np.isnan(gaps[0]))[0]]
    if without_gap:
        notes.append(msg.CLASSES_WITHOUT_GAP.format(classes=", ".join(without_gap)))
    for name, by_class in (("equalized_odds_difference", eod_by_class),
                           ("demographic_parity_difference", dpd_by_class)):
        undefined = [class_names[k] for k in np.nonzero(np.isnan(by_class[0]))[0]]
        if undefined:
            notes.append(msg.RATE_UNDEFINED.format(metric=name, classes=", ".join(undefined)))
    if signs is None:
        notes.append(msg.NO_TRAINING_DATA)
    elif np.count_nonzero(signs) < signs.size:
        notes.append(msg.BIAS_AMPLIFICATION_SKIPPED.format(count=signs.size - np.count_nonzero(signs),
                                                           total=signs.size))
    for name in BOOTSTRAPPED:
        entry = metrics[name]
        low, high = entry["ci"]
        if not np.isnan(low) and not low <= entry["mean"] <= high:
            notes.append(msg.ESTIMATE_OUTSIDE_INTERVAL.format(
                metric=name, mean=entry["mean"], side="above" if entry["mean"] > high else "below",
                low=low, high=high))
    return notes
