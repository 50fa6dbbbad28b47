"""Group-balanced random orders: every prefix holds the groups of a class as evenly as their sizes allow.

Synchronized matching (FairDD) matches each group present in a class's real
batch. With 5 % bias-conflicting rows spread over nine minority groups, a class
of 350 rows holds about two rows of each minority group, so a uniform 64-row
batch misses most of them and the match is the majority's alone on most steps.
A group-balanced batch draws the groups in turn instead (one row of each group,
then a second of each, ...), so every group with rows left is in every batch,
and the same order's first ``ipc`` rows start the synthetic images on every
group rather than on the majority.

The order is a random permutation with one constraint: a row's *round* is its
rank inside its own group's shuffle, and rows are sorted by round, ties broken
at random. A prefix of length ``n`` therefore takes ``n / G`` rows of every
group, a group smaller than that gives all its rows and the others share the
rest (water filling). Within a group the rows are uniform without replacement,
so each group's batch mean is an unbiased estimate of the group mean.
"""

from __future__ import annotations

import torch


def balanced_order(groups: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Positions ``0..len(groups)-1`` in a random order whose every prefix is group-balanced (see the module)."""
    groups = torch.as_tensor(groups).reshape(-1).cpu().long()
    count = groups.numel()
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    shuffle = torch.randperm(count, generator=generator)
    tie_break = torch.rand(count, generator=generator, dtype=torch.float64)
    return order_by_round(groups, shuffle, tie_break)


def order_by_round(groups: torch.Tensor, shuffle: torch.Tensor, tie_break: torch.Tensor) -> torch.Tensor:
    """The balanced order of positions ``0..len(groups)-1``, given its random inputs.

    *shuffle* is a uniformly random permutation of the positions and *tie_break*
    one uniform number per shuffled position. A row's round is its rank among its
    own group's rows in *shuffle*; rows come by round, ties in *tie_break* order.
    :func:`balanced_order` draws the inputs from a torch generator, the
    ``ddaudit run --batches balanced`` draw from numpy's global one.
    """
    groups = torch.as_tensor(groups).reshape(-1).cpu().long()
    shuffle = torch.as_tensor(shuffle).reshape(-1).cpu().long()
    tie_break = torch.as_tensor(tie_break).reshape(-1).cpu().double()
    count = groups.numel()
    if count == 0:
        return torch.zeros(0, dtype=torch.long)
    shuffled_groups = groups[shuffle]
    # Rank of each shuffled row inside its own group: rows of one group in shuffled order get 0, 1, 2, ...
    by_group = torch.argsort(shuffled_groups, stable=True)
    sorted_groups = shuffled_groups[by_group]
    starts = torch.ones(count, dtype=torch.bool)
    starts[1:] = sorted_groups[1:] != sorted_groups[:-1]
    start_index = torch.cummax(torch.where(starts, torch.arange(count), torch.zeros(count, dtype=torch.long)), 0).values
    rank_sorted = torch.arange(count) - start_index
    rank = torch.empty(count, dtype=torch.long)
    rank[by_group] = rank_sorted
    key = rank.double() + tie_break
    return shuffle[torch.argsort(key)]


def balanced_rows(rows: torch.Tensor, groups: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """``min(n, len(rows))`` distinct *rows* (with their *groups*) drawn group-balanced."""
    return rows[balanced_order(groups, generator)[:n]]
