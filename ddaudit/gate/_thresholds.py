"""The thresholds a fairness gate can enforce, and the values each accepts.

Every metric of the metric table (:data:`ddaudit.metrics.METRICS`) that names
a ``gate`` gives one threshold on ``metrics.<name>``: ``max_`` for a disparity,
``min_`` for an accuracy, its range from the metric's bounds, its cell
dependence from the metric. The two amplification thresholds compare DEO_M with
the real reference; the composition threshold reads the probe's section. :data:`THRESHOLDS` drives the CLI flags, the configuration
keys, the error messages that list valid names and the evaluation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ddaudit.errors import ConfigError
from ddaudit.metrics import METRICS, Metric

#: ``--max-*`` gates pass when the value is at most the threshold; ``--min-*`` when at least.
AT_MOST = "<="
AT_LEAST = ">="

BAD_THRESHOLD_TYPE_MESSAGE = "{where}: {name} must be a number, got {value!r}"
BAD_THRESHOLD_RANGE_MESSAGE = "{where}: {name} must lie in [{low:g}, {high:g}], got {value!r}{hint}"
PERCENT_HINT = " (thresholds are fractions: write {fraction:g} for {value:g} %)"


@dataclass(frozen=True)
class Threshold:
    """A named limit on one report value.

    ``entry`` locates the dict holding the value in the report. Metric summaries
    (``metrics.<m>``) hold a ``mean`` and a gating ``interval``, so ``value_key``
    is None; amplification and composition entries hold point values
    (``value_key`` such as ``ratio``) with their gating interval at
    ``<value_key>_interval`` (:attr:`interval_key`). ``needs_cells`` marks
    disparities built from per-(class, group) accuracies: an undersized cell
    makes them untrustworthy. ``interval_rule`` is False for a metric registered
    without an interval rule: it can be gated on its point value only.
    """

    name: str
    entry: tuple[str, ...]
    operator: str
    label: str
    help: str
    value_key: str | None = None
    low: float = 0.0
    high: float = 1.0
    needs_cells: bool = True
    interval_rule: bool = True

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def has_interval(self) -> bool:
        return self.value_key is None

    @property
    def interval_key(self) -> str | None:
        """Where a point-valued entry keeps the value's gating interval (``ratio_interval``)."""
        return None if self.value_key is None else f"{self.value_key}_interval"

    @property
    def metric(self) -> str:
        """How the gate names its value in reports: ``deo_max`` or ``amplification.deo_max.ratio``."""
        if self.has_interval:
            return ".".join(self.entry[1:])
        return ".".join((*self.entry, self.value_key))

    def validate(self, value: object, where: str) -> float:
        """The threshold as a float, or a ConfigError naming *where* it came from."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(BAD_THRESHOLD_TYPE_MESSAGE.format(where=where, name=self.name, value=value))
        number = float(value)
        if math.isnan(number) or not self.low <= number <= self.high:
            hint = ""
            if self.high == 1.0 and 1.0 < number <= 100.0:
                hint = PERCENT_HINT.format(fraction=number / 100.0, value=number)
            raise ConfigError(BAD_THRESHOLD_RANGE_MESSAGE.format(
                where=where, name=self.name, low=self.low, high=self.high, value=value, hint=hint,
            ))
        return number


def metric_threshold(metric: Metric) -> Threshold:
    """The gate a metric offers, read from its row of the metric table."""
    operator = AT_MOST if metric.lower_is_better else AT_LEAST
    verb = "exceeds" if metric.lower_is_better else "is below"
    return Threshold(
        metric.gate, ("metrics", metric.name), operator, metric.label,
        f"Fail when {metric.label} ({metric.description}) {verb} this fraction.",
        low=metric.bounds[0], high=metric.bounds[1], needs_cells=metric.needs_cells,
        interval_rule=metric.interval is not None,
    )


#: Gates on the amplification factor (distilled DEO_M against the real reference).
AMPLIFICATION_THRESHOLDS = (
    Threshold("max_amplification", ("amplification", "deo_max"), AT_MOST, "DEO_M amplification ratio",
              "Fail when DEO_M on the distilled set divided by DEO_M on the real reference exceeds this ratio.",
              value_key="ratio", high=math.inf),
    Threshold("max_amplification_diff", ("amplification", "deo_max"), AT_MOST, "DEO_M amplification difference",
              "Fail when DEO_M on the distilled set minus DEO_M on the real reference exceeds this fraction.",
              value_key="difference", low=-1.0),
)

#: Gates on the composition probe's section (``ddaudit probe``).
COMPOSITION_THRESHOLDS = (
    Threshold("max_majority_share", ("composition",), AT_MOST, "mean majority share",
              "Fail when the probe's mean (over classes) share of each class's most frequent predicted group "
              "exceeds this fraction (1.0: every class collapsed onto one group).",
              value_key="mean_majority_share", needs_cells=False),
    Threshold("max_majority_weight", ("composition",), AT_MOST, "mean majority weight",
              "Fail when the probe's mean (over classes) weight of the real majority group in the class's mean "
              "synthetic feature, read as a mixture of the real groups' means, exceeds this fraction "
              "(1.0: what matching sees is the majority group alone).",
              value_key="mean_majority_weight", needs_cells=False),
)

#: Gates on the privacy and robustness sections (``check --privacy``/``--robustness``); their intervals
#: already carry the sample sizes, so small clean-test cells do not make them inconclusive.
ATTACK_THRESHOLDS = (
    Threshold("max_mia_auc", ("privacy",), AT_MOST, "membership-attack AUC",
              "Fail when the ROC AUC of the strongest membership attack on the evaluators (0.5: chance) "
              "exceeds this value (needs --privacy).", value_key="auc", needs_cells=False),
    Threshold("max_mia_tpr", ("privacy",), AT_MOST, "membership-attack TPR at 1% FPR",
              "Fail when the strongest membership attack's true-positive rate at 1% false positives exceeds "
              "this fraction (needs --privacy).", value_key="tpr_at_fpr_1pct", needs_cells=False),
    Threshold("min_robust_accuracy", ("robustness",), AT_LEAST, "robust accuracy",
              "Fail when accuracy under PGD at the largest budget is below this fraction (needs --robustness).",
              value_key="accuracy", needs_cells=False),
    Threshold("max_robust_deo_max", ("robustness",), AT_MOST, "robust DEO_M",
              "Fail when DEO_M under PGD at the largest budget exceeds this fraction (needs --robustness).",
              value_key="deo_max", needs_cells=False),
)

#: FairDD's headline disparities lead the gate list; the other metrics follow in the table's order.
LEADING_METRICS = ("deo_max", "deo_avg")


def _gated_metrics() -> list[Metric]:
    ordered = [METRICS[name] for name in LEADING_METRICS if name in METRICS]
    ordered += [metric for name, metric in METRICS.items() if name not in LEADING_METRICS]
    return [metric for metric in ordered if metric.gate]


#: Every threshold by name, in the order gates are reported (metrics, amplification, composition).
THRESHOLDS: dict[str, Threshold] = {
    threshold.name: threshold
    for threshold in (*(metric_threshold(m) for m in _gated_metrics()), *AMPLIFICATION_THRESHOLDS,
                      *COMPOSITION_THRESHOLDS, *ATTACK_THRESHOLDS)
}
