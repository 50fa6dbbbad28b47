"""Members and non-members for a membership audit, with the same (class, group) composition.

Members are the real training rows the distiller drew from: the whole training
split, or the rows a ``--members`` mask names. Non-members are real rows it never
saw (the test split, plus training rows outside the mask), drawn so that each
class holds the members' share of every group: against 90 %-aligned members a
group-balanced test set would let an attack win on the group alone. A test set
that renders each digit in every colour (the embedded presets' ``test_digit``)
gives one non-member per digit, in a colour drawn to match.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddaudit.data import RealData
from ddaudit.errors import InputError

NO_TRAIN = "{name} has no training split: the membership audit needs the rows the set was distilled from"
BAD_LENGTH = "--members holds {got} values but {name} has {want} training rows (one 0/1 value per row)"
BAD_VALUES = "--members must hold 0/1 (or true/false) values, one per training row; found {value!r}"
NO_MEMBERS = "--members names no training row: the membership audit needs at least one member"
NO_NON_MEMBERS = "{name} has no rows the distiller never saw in any class of the members: no non-members to compare"
OVERLAP = ("{count} non-member row(s) are pixel-identical to member rows (the test split overlaps the training "
           "split): membership cannot be measured on these splits")


@dataclass(frozen=True)
class MembershipSplit:
    """Member rows (indices into the training split) and non-member rows, from the test or the training split."""

    members: np.ndarray
    non_members_test: np.ndarray
    non_members_train: np.ndarray
    source: str

    @property
    def num_non_members(self) -> int:
        return len(self.non_members_test) + len(self.non_members_train)


def read_members(path: str | Path, n_train: int, name: str = "the real data") -> np.ndarray:
    """A boolean member mask over the training rows from a ``.npy`` or a text file of 0/1 values."""
    path = Path(path)
    try:
        values = np.load(path, allow_pickle=False) if path.suffix == ".npy" else np.loadtxt(path, dtype=str, ndmin=1)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read --members {path}: {error}".splitlines()[0]) from None
    return as_member_mask(values, n_train, name)


def as_member_mask(values, n_train: int, name: str = "the real data") -> np.ndarray:
    """*values* (bools, 0/1 numbers or their text) as a boolean mask of *n_train* rows, refused otherwise."""
    values = np.asarray(values).reshape(-1)
    if len(values) != n_train:
        raise InputError(BAD_LENGTH.format(got=len(values), name=name, want=n_train))
    if values.dtype.kind in "US":
        table = {"0": False, "1": True, "false": False, "true": True}
        bad = next((v for v in values if str(v).strip().lower() not in table), None)
        if bad is not None:
            raise InputError(BAD_VALUES.format(value=str(bad)))
        mask = np.array([table[str(v).strip().lower()] for v in values])
    else:
        bad = values[~np.isin(values, (0, 1))] if values.dtype.kind != "b" else values[:0]
        if len(bad):
            raise InputError(BAD_VALUES.format(value=bad[0].item()))
        mask = values.astype(bool)
    if not mask.any():
        raise InputError(NO_MEMBERS)
    return mask


def membership_split(real: RealData, members: np.ndarray | None = None, seed: int = 0) -> MembershipSplit:
    """The members (all training rows, or the *members* mask) and composition-matched non-members.

    Refuses, before anything is trained, a mask of the wrong length, an empty
    mask, data without a training split or without usable non-members, and
    non-members whose pixels equal a member's.
    """
    if real.train is None:
        raise InputError(NO_TRAIN.format(name=real.name))
    n_train = len(real.train)
    mask = np.ones(n_train, bool) if members is None else as_member_mask(members, n_train, real.name)
    train_y, train_a = real.train.y.numpy(), real.train.a.numpy()
    test_y, test_a = real.test.y.numpy(), real.test.a.numpy()
    digits = real.meta.get("test_digit")
    test_unit = np.asarray(digits) if digits is not None else np.arange(len(test_y))
    rng = np.random.default_rng([seed, 26])
    picked_test, picked_train = [], []
    member_rows = np.flatnonzero(mask)
    for cls in np.unique(train_y[member_rows]):
        in_class = member_rows[train_y[member_rows] == cls]
        share = np.bincount(train_a[in_class], minlength=real.num_groups) / len(in_class)
        units = _units(test_unit, test_y, test_a, cls, ("test",)) + [
            {int(train_a[row]): ("train", int(row))} for row in np.flatnonzero(~mask & (train_y == cls))]
        chosen = _matched(units, share, rng)
        picked_test += [row for kind, row in chosen if kind == "test"]
        picked_train += [row for kind, row in chosen if kind == "train"]
    if not picked_test and not picked_train:
        raise InputError(NO_NON_MEMBERS.format(name=real.name))
    split = MembershipSplit(member_rows, np.sort(np.array(picked_test, int)), np.sort(np.array(picked_train, int)),
                            _describe(digits is not None, members is not None))
    _check_disjoint(real, split)
    return split


def _units(unit_ids: np.ndarray, y: np.ndarray, a: np.ndarray, cls: int, kind: tuple) -> list[dict]:
    """Test rows of class *cls* grouped by source image: ``{group: (kind, row)}`` per image."""
    units: dict[int, dict] = {}
    for row in np.flatnonzero(y == cls):
        units.setdefault(int(unit_ids[row]), {})[int(a[row])] = (*kind, int(row))
    return list(units.values())


def _targets(share: np.ndarray, total: int) -> np.ndarray:
    """*total* rows spread over groups in proportion to *share* (largest remainder)."""
    exact = share * total
    counts = np.floor(exact).astype(int)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: total - counts.sum()]] += 1
    return counts


def _assign(units: list[dict], counts: np.ndarray, rng: np.random.Generator) -> list | None:
    """One option of distinct units per wanted row, scarcest group first; None when impossible."""
    free = set(range(len(units)))
    order = sorted(np.flatnonzero(counts), key=lambda g: sum(g in u for u in units))
    chosen = []
    for group in order:
        offering = [i for i in free if group in units[i]]
        if len(offering) < counts[group]:
            return None
        offering.sort()
        for i in rng.permutation(offering)[: counts[group]]:
            free.discard(int(i))
            chosen.append(units[int(i)][group])
    return chosen


def _matched(units: list[dict], share: np.ndarray, rng: np.random.Generator) -> list:
    """The most non-members of one class whose group counts follow *share* (a binary search on the total)."""
    low, high, best = 0, len(units), []
    while low < high:
        middle = (low + high + 1) // 2
        chosen = _assign(units, _targets(share, middle), np.random.default_rng(rng.integers(2**32)))
        if chosen is None:
            high = middle - 1
        else:
            low, best = middle, chosen
    return best


def _describe(per_digit: bool, masked: bool) -> str:
    source = "test digits, one colour each, drawn to the members' (class, group) shares" if per_digit else \
        "test rows drawn to the members' (class, group) shares"
    return source + (", plus training rows outside --members" if masked else "")


def _digests(x) -> list[str]:
    flat = np.ascontiguousarray(x.numpy().reshape(len(x), int(np.prod(x.shape[1:]))))
    return [hashlib.sha1(row.tobytes()).hexdigest() for row in flat]


def _check_disjoint(real: RealData, split: MembershipSplit) -> None:
    members = set(_digests(real.train.x[split.members]))
    outsiders = _digests(real.test.x[split.non_members_test]) + _digests(real.train.x[split.non_members_train])
    count = sum(digest in members for digest in outsiders)
    if count:
        raise InputError(OVERLAP.format(count=count))
