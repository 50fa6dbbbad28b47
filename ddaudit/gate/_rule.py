"""The decision rule every interval gate follows, and what data would settle an open one.

Pass when the whole interval meets the threshold, fail when the whole interval
violates it, inconclusive only when the threshold lies inside it. Small test
cells make the interval wider; they never override a decision the interval
already makes (a 100 % vs 0 % gap on 8 images per cell is still a certain
violation of 0.3).

An inconclusive gate says how much more test data would settle it. Interval
half-widths shrink roughly as ``1/sqrt(n)``, so to move the pessimistic end
from ``h`` to ``h'`` away from the estimate every cell needs about
``(h / h')**2`` times its images. Only the test-set part of the width shrinks
that way; when the evaluator spread alone already reaches the threshold, more
evaluators are what helps.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

from ddaudit.errors import FAIL, INCONCLUSIVE, PASS  # noqa: F401 - re-exported for the gate package
from ddaudit.gate._thresholds import AT_MOST

#: Above this factor the hint says "more than" instead of a number: the 1/sqrt(n) rule is rough.
LARGEST_FACTOR = 100.0

ON_THRESHOLD_HINT = (
    "the estimate {estimate:.4g} sits on the threshold, so no amount of test data settles it; "
    "decide with --inconclusive or change the threshold"
)
EVALUATORS_HINT = (
    "the evaluator spread alone (+/-{margin:.3g}) reaches the threshold; more evaluators (--num-eval), "
    "not more test images, would settle it"
)
IMAGES_HINT = (
    "to settle it, roughly {factor} the test images per (class, group) cell "
    "(smallest cell {smallest} -> about {needed})"
)
EMPTY_CELLS_HINT = (
    "{count} (class, group) cell(s) have no test images, so their accuracy could be anything; "
    "add test images there first"
)
IMAGES_HINT_NO_CELLS = "to settle it, roughly {factor} the test images"


class Verdict(NamedTuple):
    """The outcome and the interval end it rests on (``basis`` names that end)."""

    outcome: str
    value: float
    basis: str


def meets(operator: str, value: float, threshold: float) -> bool:
    return value <= threshold if operator == AT_MOST else value >= threshold


def decide(operator: str, threshold: float, low: float, high: float) -> Verdict:
    """Pass if the whole ``[low, high]`` meets *threshold*, fail if the whole of it violates it.

    ``value`` is the end that decided: the pessimistic end for a pass or an
    inconclusive gate (``high`` for ``<=``), the optimistic end for a failure.
    """
    low, high = min(low, high), max(low, high)
    if operator == AT_MOST:
        (pessimistic, worst_end), (optimistic, best_end) = (high, "interval_high"), (low, "interval_low")
    else:
        (pessimistic, worst_end), (optimistic, best_end) = (low, "interval_low"), (high, "interval_high")
    if meets(operator, pessimistic, threshold):
        return Verdict(PASS, pessimistic, worst_end)
    if not meets(operator, optimistic, threshold):
        return Verdict(FAIL, optimistic, best_end)
    return Verdict(INCONCLUSIVE, pessimistic, worst_end)


def settle_hint(
    operator: str,
    threshold: float,
    estimate: float | None,
    interval: tuple[float, float],
    *,
    test_interval: tuple[float, float] | None = None,
    margin: float = 0.0,
    cell_counts: Sequence[int] = (),
) -> str:
    """What data would settle an inconclusive gate, in one clause ("" when nothing sensible can be said).

    The side of the interval that must move is the one between the estimate
    and the threshold: a gate whose estimate meets the threshold needs its
    pessimistic end pulled in, one whose estimate violates it its optimistic end.
    """
    if estimate is None or not math.isfinite(estimate):
        return ""
    room = abs(threshold - estimate)
    empty = sum(1 for count in cell_counts if count == 0)
    if empty and meets(operator, estimate, threshold):  # the pessimistic end is held open by unmeasured cells
        return EMPTY_CELLS_HINT.format(count=empty)
    if room == 0.0:
        return ON_THRESHOLD_HINT.format(estimate=estimate)
    low, high = test_interval if test_interval is not None else interval
    # The end that must move lies on the threshold's side of the estimate.
    test_half = high - estimate if threshold > estimate else estimate - low
    margin = max(0.0, margin or 0.0)
    if margin >= room:
        return EVALUATORS_HINT.format(margin=margin)
    target = math.sqrt(room ** 2 - margin ** 2)
    if test_half <= 0.0:
        return ""
    factor = min((test_half / target) ** 2, LARGEST_FACTOR)
    shown = f"more than {LARGEST_FACTOR:.0f}x" if factor >= LARGEST_FACTOR else f"{factor:.1f}x"
    filled = [int(c) for c in cell_counts if c and c > 0]
    if not filled:
        return IMAGES_HINT_NO_CELLS.format(factor=shown)
    needed = math.ceil(min(filled) * factor)
    return IMAGES_HINT.format(factor=shown, smallest=min(filled),
                              needed=f"{needed}+" if factor >= LARGEST_FACTOR else needed)
