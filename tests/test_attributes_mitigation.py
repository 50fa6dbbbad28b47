"""Fair matching over several attributes: (n, K) groups fold to their intersection (or chosen columns),
in ``@fair_matching`` and in the reference distillers."""

from __future__ import annotations

import itertools

import pytest
import torch

from ddaudit.data import GroupTensors, intersection_index
from ddaudit.distill import distill_dc, distill_dm, dm_loss
from ddaudit.errors import ConfigError
from ddaudit.hooks import fair_matching
from ddaudit.mitigate import fold_attributes


def table(n: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randint(0, 2, (n,), generator=generator),
                        torch.randint(0, 3, (n,), generator=generator)], dim=1)


def test_fold_attributes_picks_columns_or_their_intersection():
    groups = table(40)
    assert torch.equal(fold_attributes(groups), intersection_index(groups))
    assert torch.equal(fold_attributes(groups, 1), groups[:, 1])
    assert torch.equal(fold_attributes(groups, [1, 0]), groups[:, 1] * 2 + groups[:, 0])
    flat = torch.arange(5)
    assert fold_attributes(flat) is flat
    with pytest.raises(ConfigError, match="one column"):
        fold_attributes(flat, 0)
    with pytest.raises(ConfigError, match="outside the 2"):
        fold_attributes(groups, 2)
    with pytest.raises(ConfigError, match="column index"):
        fair_matching(mode="sync", attribute="colour")


def written_sync(real, syn, groups: torch.Tensor) -> torch.Tensor:
    """FairDD's synchronised loss by hand: one term per combination present."""
    total = real.new_zeros(())
    for combo in itertools.product(*[torch.unique(groups[:, k]).tolist() for k in range(groups.shape[1])]):
        rows = (groups == torch.tensor(combo)).all(dim=1)
        if rows.any():
            total = total + dm_loss(real[rows], syn)
    return total


@pytest.mark.parametrize("strategy", ["loop", "rescale"])
def test_sync_over_an_attribute_table_is_the_sum_over_intersections(strategy):
    generator = torch.Generator().manual_seed(1)
    real = torch.randn(40, 6, generator=generator)
    syn = torch.randn(4, 6, generator=generator, requires_grad=True)
    groups = table(40, seed=2)
    loss = fair_matching(mode="sync", strategy=strategy)(dm_loss)
    expected = written_sync(real, syn, groups)
    got = loss(real, syn, groups=groups)
    (g_got,) = torch.autograd.grad(got, syn)
    (g_expected,) = torch.autograd.grad(expected, syn)
    assert torch.allclose(g_got, g_expected, atol=1e-6)
    if strategy == "loop":
        assert float(got.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
        assert loss.stats.group_terms == len(torch.unique(intersection_index(groups)))
    # One attribute alone: the sum over its values only.
    by_second = fair_matching(mode="sync", strategy=strategy, attribute=1)(dm_loss)
    (g_one,) = torch.autograd.grad(by_second(real, syn, groups=groups), syn)
    (g_written,) = torch.autograd.grad(written_sync(real, syn, groups[:, 1:]), syn)
    assert torch.allclose(g_one, g_written, atol=1e-6)
    assert not torch.allclose(g_one, g_expected, atol=1e-3)


@pytest.fixture(scope="module")
def real() -> GroupTensors:
    generator = torch.Generator().manual_seed(3)
    y = torch.arange(60) % 3
    attrs = table(60, seed=4)
    x = torch.randn(60, 1, 8, 8, generator=generator) + attrs[:, :1, None, None].float()
    return GroupTensors(x, y, intersection_index(attrs, (2, 3)), attrs)


SETTINGS = dict(num_classes=3, ipc=2, iterations=3, model="MLP", batch_real=16, lr_img=1.0, dsa=False, seed=5)


def test_distill_dm_syncs_over_the_chosen_attribute_or_the_intersection(real):
    by_intersection = distill_dm(real, mode="sync", **SETTINGS)
    as_table = distill_dm(GroupTensors(real.x, real.y, real.attrs), mode="sync", **SETTINGS)
    assert torch.equal(by_intersection.images, as_table.images)
    first = distill_dm(real, mode="sync", attribute=0, **SETTINGS)
    flat = distill_dm(GroupTensors(real.x, real.y, real.attrs[:, 0]), mode="sync", **SETTINGS)
    assert torch.equal(first.images, flat.images)
    assert not torch.allclose(first.images, by_intersection.images)
    assert first.meta["attribute"] == 0 and first.meta["fair_matching"]["groups_seen"].keys() <= {0, 1}
    with pytest.raises(ConfigError, match="one group column"):
        distill_dm(GroupTensors(real.x, real.y, real.a), mode="sync", attribute=1, **SETTINGS)


def test_distill_dc_syncs_over_a_chosen_attribute(real):
    settings = {**SETTINGS, "iterations": 1, "outer_loop": 2, "inner_loop": 1, "init": "real"}
    second = distill_dc(real, mode="sync", attribute=1, **settings)
    flat = distill_dc(GroupTensors(real.x, real.y, real.attrs[:, 1]), mode="sync", **settings)
    assert torch.equal(second.images, flat.images)
    both = distill_dc(real, mode="sync", **settings)
    assert not torch.allclose(second.images, both.images)


def test_tagged_batches_and_group_contexts_carry_attribute_tables():
    from ddaudit.hooks import GroupTagged, group_context

    generator = torch.Generator().manual_seed(6)
    real = torch.randn(30, 5, generator=generator)
    syn = torch.randn(3, 5, generator=generator)
    groups = table(30, seed=7)
    loss = fair_matching(mode="sync", strategy="loop", attribute=0)(dm_loss)
    direct = loss(real, syn, groups=groups)
    assert float(direct) == pytest.approx(float(written_sync(real, syn, groups[:, :1])), rel=1e-6)
    assert float(loss(GroupTagged(real, groups), syn)) == float(direct)
    order = torch.randperm(30, generator=generator)
    with group_context(table=groups) as context:
        picked = real[context.select(order)]
        assert torch.equal(context.groups, groups[order])
        assert float(loss(picked, syn)) == pytest.approx(float(direct), rel=1e-6)


def test_a_groups_file_with_several_columns_gives_their_intersection(tmp_path):
    import numpy as np

    from ddaudit.errors import InputError
    from ddaudit.hooks.patchers import load_groups

    values = table(20, seed=8).numpy()
    np.save(tmp_path / "g.npy", values)
    np.savetxt(tmp_path / "g.csv", values, delimiter=",", fmt="%d")
    for name in ("g.npy", "g.csv"):
        assert load_groups(tmp_path / name).tolist() == intersection_index(values).tolist()
    np.save(tmp_path / "flat.npy", values[:, 1])
    assert load_groups(tmp_path / "flat.npy").tolist() == values[:, 1].tolist()
    np.save(tmp_path / "cube.npy", np.zeros((2, 2, 2), dtype=np.int64))
    with pytest.raises(InputError, match=r"\(N, K\)"):
        load_groups(tmp_path / "cube.npy")
