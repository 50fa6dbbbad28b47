"""Group-balanced batches and initialisation: every prefix holds the groups evenly, within a group rows are uniform."""

from __future__ import annotations

import pytest
import torch

from ddaudit.data import load_real
from ddaudit.distill import distill_dm
from ddaudit.distill._common import ClassSampler, MatchingRun
from ddaudit.errors import ConfigError
from ddaudit.mitigate.balanced import balanced_order, balanced_rows


def _prefix_is_water_filled(groups: torch.Tensor, order: torch.Tensor) -> None:
    sizes = torch.bincount(groups)
    for n in range(1, len(order) + 1):
        taken = torch.bincount(groups[order[:n]], minlength=len(sizes))
        left = taken < sizes  # groups with rows still to give
        # A group with rows left never trails a group by more than one row; exhausted groups gave everything.
        if left.any():
            assert int(taken.max()) - int(taken[left].min()) <= 1, (n, taken.tolist(), sizes.tolist())


@pytest.mark.parametrize("sizes", [[5, 5], [40, 2, 2, 1], [1], [17, 3, 9, 1, 1, 6]])
def test_every_prefix_is_balanced_and_the_order_is_a_permutation(sizes):
    groups = torch.cat([torch.full((s,), g) for g, s in enumerate(sizes)])
    groups = groups[torch.randperm(len(groups), generator=torch.Generator().manual_seed(3))]
    order = balanced_order(groups, torch.Generator().manual_seed(0))
    assert sorted(order.tolist()) == list(range(len(groups)))
    _prefix_is_water_filled(groups, order)


def test_same_seed_same_order_and_another_seed_another():
    groups = torch.tensor([0] * 30 + [1] * 4 + [2] * 3)
    first = balanced_order(groups, torch.Generator().manual_seed(1))
    assert torch.equal(first, balanced_order(groups, torch.Generator().manual_seed(1)))
    assert not torch.equal(first, balanced_order(groups, torch.Generator().manual_seed(2)))


def test_rows_inside_a_group_are_drawn_uniformly_and_groups_take_turns_at_random():
    groups = torch.tensor([0] * 4 + [1] * 4)
    generator = torch.Generator().manual_seed(0)
    first_of_group0 = torch.zeros(4)
    first_group = torch.zeros(2)
    trials = 4000
    for _ in range(trials):
        order = balanced_order(groups, generator)
        first_group[groups[order[0]]] += 1
        first0 = next(int(i) for i in order if groups[i] == 0)
        first_of_group0[first0] += 1
    # Binomial noise at 4000 trials: sd of a 1/4 share about 0.007, of a 1/2 share about 0.008.
    assert torch.allclose(first_of_group0 / trials, torch.full((4,), 0.25), atol=0.03)
    assert torch.allclose(first_group / trials, torch.full((2,), 0.5), atol=0.04)


def test_balanced_rows_are_distinct_rows_of_the_class():
    rows = torch.arange(100, 120)
    groups = torch.tensor([0] * 17 + [1, 2, 3])
    picked = balanced_rows(rows, groups, 8, torch.Generator().manual_seed(0))
    assert len(set(picked.tolist())) == 8 and set(picked.tolist()) <= set(rows.tolist())
    # Every group is in the batch: the three single-row groups and five majority rows.
    assert set(picked.tolist()) >= {117, 118, 119}


@pytest.fixture(scope="module")
def real():
    return load_real("cmnist-fg", n_train=300, n_test=10, bias_ratio=0.9)


def test_balanced_batches_hold_every_group_of_the_class_while_uniform_batches_miss_most(real):
    settings = dict(num_classes=10, ipc=2, init="real", model="ConvNetW32D2", lr_img=1.0, batch_real=10,
                    weights=None, sample_weights=None, dsa=False, dsa_strategy="", seed=0, device="cpu")
    covered = {}
    for batches in ("uniform", "balanced"):
        run = MatchingRun(real.train, batches=batches, **settings)
        counts = []
        for _ in range(20):
            for c in range(10):
                index, _, _ = run.class_batch(c)
                present = set(real.train.a[index].tolist())
                counts.append(len(present) / len(set(real.train.a[real.train.y == c].tolist())))
        covered[batches] = sum(counts) / len(counts)
    # 30 rows a class, 90 % in one colour: a 10-row uniform batch holds few of the class's colours.
    assert covered["balanced"] == 1.0
    assert covered["uniform"] < 0.6


def test_balanced_init_starts_on_every_group_and_distills_deterministically(real):
    result = distill_dm(real.train, num_classes=10, ipc=3, iterations=0, model="ConvNetW32D2", init="balanced",
                        batch_real=10, dsa=False)
    sampler = ClassSampler(real.train.y, 10, groups=real.train.a)
    for c in range(10):
        starts = result.images[c * 3:(c + 1) * 3]
        rows = sampler.rows[c]
        # Each starting image is a real image of the class; together they come from 3 different groups.
        matched = [int(rows[(real.train.x[rows] == image).flatten(1).all(1)][0]) for image in starts]
        assert len({int(real.train.a[r]) for r in matched}) == min(3, len(set(real.train.a[rows].tolist())))
    one = distill_dm(real.train, num_classes=10, ipc=2, iterations=2, model="ConvNetW32D2", mode="sync",
                     batches="balanced", init="balanced", batch_real=10, dsa=False, seed=4)
    two = distill_dm(real.train, num_classes=10, ipc=2, iterations=2, model="ConvNetW32D2", mode="sync",
                     batches="balanced", init="balanced", batch_real=10, dsa=False, seed=4)
    assert torch.equal(one.images, two.images) and one.meta["sampling"] == "balanced"


def test_bad_balance_options_are_refused(real):
    common = dict(num_classes=10, ipc=1, iterations=1, model="ConvNetW32D2", batch_real=10, dsa=False)
    with pytest.raises(ConfigError, match="unknown batches 'stratified'"):
        distill_dm(real.train, batches="stratified", **common)
    with pytest.raises(ConfigError, match="use one"):
        distill_dm(real.train, batches="balanced", sample_weights=torch.ones(len(real.train)), **common)
