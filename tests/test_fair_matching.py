"""``@fair_matching`` and the group row scales: equivalences, edge cases, state and errors."""

import threading
import warnings

import pytest
import torch

from ddaudit.errors import ConfigError, InputError
from ddaudit.hooks import (
    GroupTagged,
    SmallGroupWarning,
    current_group_context,
    fair_matching,
    group_context,
)
from ddaudit.hooks.fair_matching import (
    ERR_NEEDS_MEAN,
    ERR_NO_GROUPS,
    ERR_NO_WEIGHTS,
    ERR_REDUCE,
    ERR_STRATEGY,
    ERR_WEIGHTED_OUTPUT,
)
from ddaudit.mitigate import groups as G


def squared_mean_distance(real, syn):
    """DM's per-class loss, written independently of ddaudit.distill."""
    return ((real.mean(0) - syn.mean(0)) ** 2).sum()


def nonlinear_loss(real, syn):
    """A loss that is not a function of the real row mean (for the loop strategy)."""
    return (real.abs().max(0).values - syn.mean(0)).abs().sum() + (real.std(0, unbiased=False) * syn.var(0)).sum()


def fairdd_loop(real, syn, groups, loss=squared_mean_distance):
    """FairDD's published DM loop: one term per group present in the batch, summed."""
    total = 0
    for col in torch.unique(groups):
        total = total + loss(real[groups == col], syn)
    return total


def make_batch(seed, n=60, dim=7, num_groups=6, absent=(2, 4), ipc=5):
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(n, dim, generator=gen, dtype=torch.float64) * 3 + 1
    groups = torch.randint(0, num_groups, (n,), generator=gen)
    for g in absent:
        groups[groups == g] = 0
    syn = torch.randn(ipc, dim, generator=gen, dtype=torch.float64).requires_grad_(True)
    return real, syn, groups


def grad_syn(value, syn):
    return torch.autograd.grad(value, syn)[0]


def group_means(real, groups):
    return torch.stack([real[groups == g].mean(0) for g in torch.unique(groups)])


# ---------------------------------------------------------------- group row scales


def test_row_scales_give_barycenter_and_weighted_means():
    real, _, groups = make_batch(0)
    scales = G.row_scales(groups, "sync")
    barycenter = group_means(real, groups).mean(0)
    assert torch.allclose((scales.double()[:, None] * real).mean(0), barycenter, atol=1e-6)
    assert torch.equal(G.row_scales(groups, "barycenter"), scales)

    weights = torch.rand(len(groups), generator=torch.Generator().manual_seed(1))
    w_scales = G.row_scales(groups, "weights", weights)
    expected = (weights.double()[:, None] * real).sum(0) / weights.double().sum()
    assert torch.allclose((w_scales.double()[:, None] * real).mean(0), expected, atol=1e-6)
    assert torch.equal(G.row_scales(groups, "none"), torch.ones(len(groups)))


def test_present_groups_and_sync_scale():
    groups = torch.tensor([5, 1, 1, 9, 5, 5])
    assert G.present_groups(groups).tolist() == [1, 5, 9]
    assert G.sync_scale(groups) == pytest.approx(3**0.5)
    assert G.sync_scale(groups, min_group_size=2) == pytest.approx(2**0.5)
    kept, skipped = G.kept_groups(groups, 2)
    assert kept.tolist() == [1, 5] and skipped.tolist() == [9]


def test_sync_scale_on_both_sides_reproduces_fairdd_gradient():
    """The patcher form of the identity: sqrt(K) on real (rescaled) and syn features."""
    real, syn, groups = make_batch(3)
    k = G.sync_scale(groups)
    scaled_real = real * G.row_scales(groups, "sync").double()[:, None] * k
    patched = squared_mean_distance(scaled_real, syn * k)
    reference = fairdd_loop(real, syn, groups)
    assert torch.allclose(grad_syn(patched, syn), grad_syn(reference, syn), atol=1e-10)


def test_target_weights_columns():
    groups = torch.tensor([3, 3, 0, 7, 7, 7])
    columns = G.target_weights(groups, "sync")
    assert columns.shape == (6, 3)
    assert torch.allclose(columns.sum(0), torch.ones(3))
    assert columns[:, 0].tolist() == [0, 0, 1, 0, 0, 0]  # group 0 first (sorted ids)
    bary = G.target_weights(groups, "barycenter")
    assert torch.allclose(bary[:, 0], G.row_scales(groups, "barycenter") / 6)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda: G.row_scales(torch.tensor([0, 1]), "fair"), ConfigError, "unknown matching mode 'fair'"),
        (lambda: G.row_scales(None, "sync"), ConfigError, "needs the protected group"),
        (lambda: G.row_scales(torch.tensor([0.5, 1.0]), "sync"), InputError, "1-D integer tensor"),
        (lambda: G.row_scales(torch.tensor([0, 1]), "weights"), ConfigError, "needs one weight per real row"),
        (lambda: G.row_scales(torch.tensor([0, 1]), "weights", torch.tensor([1.0])), InputError, "weights has 1 entries"),
        (lambda: G.row_scales(None, "weights", torch.tensor([1.0, -1.0])), InputError, "non-negative"),
        (lambda: G.row_scales(None, "weights", torch.tensor([1.0, float("nan")])), InputError, "non-negative"),
        (lambda: G.row_scales(None, "weights", torch.zeros(3)), InputError, "sum to zero"),
        (lambda: G.row_scales(torch.tensor([0, 1]), "sync", min_group_size=0), ConfigError, "min_group_size"),
        (lambda: G.row_scales(torch.tensor([0, 1]), "sync", min_group_size=2), InputError, "no group has"),
    ],
)
def test_group_validation_messages(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------- equivalences


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rescale_sync_equals_per_group_sum_up_to_constant(seed):
    real, syn, groups = make_batch(seed)
    fair = fair_matching(mode="sync", mean_matching=True)(squared_mean_distance)
    assert fair.strategy == "rescale"
    value = fair(real, syn, groups=groups)
    reference = fairdd_loop(real, syn, groups)
    means = group_means(real, groups)
    constant = ((means - means.mean(0)) ** 2).sum()
    assert torch.allclose(reference - value, constant, atol=1e-9)
    assert torch.allclose(grad_syn(value, syn), grad_syn(reference, syn), atol=1e-10)


def test_rescale_sync_mean_reduce_divides_by_groups_present():
    real, syn, groups = make_batch(4)
    k = len(torch.unique(groups))
    fair = fair_matching(mode="sync", reduce="mean", mean_matching=True)(squared_mean_distance)
    assert torch.allclose(grad_syn(fair(real, syn, groups=groups), syn), grad_syn(fairdd_loop(real, syn, groups) / k, syn))


@pytest.mark.parametrize("seed", [0, 5])
def test_rescale_barycenter_is_exact(seed):
    real, syn, groups = make_batch(seed)
    fair = fair_matching(mode="barycenter", mean_matching=True)(squared_mean_distance)
    value = fair(real, syn, groups=groups)
    barycenter = group_means(real, groups).mean(0)
    reference = ((barycenter - syn.mean(0)) ** 2).sum()
    assert torch.allclose(value, reference, atol=1e-10)
    assert torch.allclose(grad_syn(value, syn), grad_syn(reference, syn), atol=1e-10)


def test_rescale_weights_is_exact_for_any_mean_function():
    real, syn, groups = make_batch(6)
    weights = torch.rand(len(groups), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    weights[:5] = 0

    def l1_of_means(r, s):
        return (r.mean(0) - s.mean(0)).abs().sum()

    fair = fair_matching(mode="weights", mean_matching=True)(l1_of_means)
    value = fair(real, syn, weights=weights)
    weighted_mean = (weights[:, None] * real).sum(0) / weights.sum()
    reference = (weighted_mean - syn.mean(0)).abs().sum()
    assert torch.allclose(value, reference, atol=1e-10)
    assert torch.allclose(grad_syn(value, syn), grad_syn(reference, syn), atol=1e-10)


def test_weighted_strategy_matches_explicit_targets_in_every_mode():
    real, syn, groups = make_batch(7)
    weights = torch.rand(len(groups), generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def weighted_targets(r, s, *, row_weights):
        targets = row_weights.T.to(r) @ r  # (T, D) weighted real means
        return ((targets - s.mean(0)) ** 2).sum(1)

    sync = fair_matching(mode="sync", strategy="weighted")(weighted_targets)
    assert torch.allclose(sync(real, syn, groups=groups), fairdd_loop(real, syn, groups), atol=1e-6)
    bary = fair_matching(mode="barycenter", strategy="weighted")(weighted_targets)
    expected = ((group_means(real, groups).mean(0) - syn.mean(0)) ** 2).sum()
    assert torch.allclose(bary(real, syn, groups=groups), expected, atol=1e-6)
    wmode = fair_matching(mode="weights", strategy="weighted")(weighted_targets)
    expected = (((weights[:, None] * real).sum(0) / weights.sum() - syn.mean(0)) ** 2).sum()
    assert torch.allclose(wmode(real, syn, weights=weights), expected, atol=1e-6)


def test_loop_equals_hand_written_fairdd_loop_and_mean_reduce():
    real, syn, groups = make_batch(8)
    fair = fair_matching(mode="sync")(nonlinear_loss)
    assert fair.strategy == "loop"
    reference = fairdd_loop(real, syn, groups, nonlinear_loss)
    value = fair(real, syn, groups=groups)
    assert torch.allclose(value, reference, atol=1e-12)
    assert torch.allclose(grad_syn(value, syn), grad_syn(reference, syn), atol=1e-12)
    mean = fair_matching(mode="sync", reduce="mean")(nonlinear_loss)
    k = len(torch.unique(groups))
    assert torch.allclose(mean(real, syn, groups=groups), fairdd_loop(real, syn, groups, nonlinear_loss) / k)


def test_loop_slices_tuple_real_batches_together():
    real, syn, groups = make_batch(9)
    labels = torch.arange(len(groups)).double()

    def uses_both(batch, s):
        x, tag = batch
        return squared_mean_distance(x, s) * tag.mean()

    fair = fair_matching(mode="sync")(uses_both)
    reference = sum(uses_both((real[groups == g], labels[groups == g]), syn) for g in torch.unique(groups))
    assert torch.allclose(fair((real, labels), syn, groups=groups), reference)


@pytest.mark.parametrize("strategy", ["loop", "rescale"])
def test_single_group_batch_is_identical_to_vanilla(strategy):
    real, syn, _ = make_batch(10)
    groups = torch.full((real.shape[0],), 3)
    fair = fair_matching(mode="sync", strategy=strategy)(squared_mean_distance)
    assert torch.equal(fair(real, syn, groups=groups), squared_mean_distance(real, syn))
    assert fair.stats.passthrough_calls == 1


def test_gradcheck_through_rescaled_sync():
    real, syn, groups = make_batch(11, n=20, dim=3, ipc=2)
    fair = fair_matching(mode="sync", mean_matching=True)(squared_mean_distance)
    assert torch.autograd.gradcheck(lambda s: fair(real, s, groups=groups), (syn,))


def test_none_mode_passes_through_and_drops_group_keywords():
    real, syn, groups = make_batch(12)
    plain = fair_matching(mode="none")(squared_mean_distance)
    assert torch.equal(plain(real, syn, groups=groups, weights=torch.ones(len(groups))), squared_mean_distance(real, syn))


# ---------------------------------------------------------------- small and absent groups


def test_small_groups_are_skipped_with_a_counted_warning():
    real, syn, _ = make_batch(13, n=12)
    groups = torch.tensor([0] * 5 + [1] * 4 + [2] * 2 + [3])
    fair = fair_matching(mode="sync", min_group_size=3)(squared_mean_distance)
    with pytest.warns(SmallGroupWarning, match="min_group_size=3"):
        value = fair(real, syn, groups=groups)
    big = groups < 2
    assert torch.allclose(value, fairdd_loop(real[big], syn, groups[big]))
    assert fair.stats.skipped_groups == 2
    assert dict(fair.stats.groups_seen) == {0: 1, 1: 1}


def test_no_group_large_enough_falls_back_to_vanilla():
    real, syn, _ = make_batch(14, n=6)
    groups = torch.tensor([0, 1, 2, 3, 4, 5])
    fair = fair_matching(mode="barycenter", mean_matching=True, min_group_size=2)(squared_mean_distance)
    with pytest.warns(SmallGroupWarning, match="vanilla loss"):
        value = fair(real, syn, groups=groups)
    assert torch.equal(value, squared_mean_distance(real, syn))
    assert fair.stats.fallback_calls == 1 and fair.stats.skipped_groups == 6


def test_absent_groups_do_not_add_terms():
    real, syn, groups = make_batch(15, num_groups=10, absent=(1, 2, 3, 7))
    fair = fair_matching(mode="sync")(squared_mean_distance)
    fair(real, syn, groups=groups)
    assert fair.stats.group_terms == len(torch.unique(groups))
    assert not {1, 2, 3, 7} & set(fair.stats.groups_seen)


# ---------------------------------------------------------------- wrapping forms and state


class Distiller:
    def __init__(self, scale):
        self.scale = scale

    @fair_matching(mode="sync", mean_matching=True)
    def loss(self, real, syn):
        return self.scale * squared_mean_distance(real, syn)


def test_decorated_methods_bind_self_and_share_stats():
    real, syn, groups = make_batch(16)
    a, b = Distiller(1.0), Distiller(2.0)
    value_a = a.loss(real, syn, groups=groups)
    value_b = b.loss(real, syn, groups=groups)
    assert torch.allclose(value_b, 2 * value_a)
    assert Distiller.loss.stats.calls == 2
    assert a.loss.stats is b.loss.stats


def test_runtime_wrapping_keyword_arguments_and_rewrapping():
    real, syn, groups = make_batch(17)
    sync = fair_matching(mode="sync")(squared_mean_distance)
    by_name = sync(real=real, syn=syn, groups=groups)
    assert torch.allclose(by_name, fairdd_loop(real, syn, groups))
    bary = fair_matching(mode="barycenter", mean_matching=True)(sync)
    assert bary.mode == "barycenter" and bary.stats is not sync.stats
    expected = ((group_means(real, groups).mean(0) - syn.mean(0)) ** 2).sum()
    assert torch.allclose(bary(real, syn, groups=groups), expected)

    @fair_matching
    def bare(r, s):
        return squared_mean_distance(r, s)

    assert bare.mode == "sync" and bare.__name__ == "bare"


def test_two_wrapped_losses_do_not_share_state():
    real, syn, groups = make_batch(18)
    first = fair_matching(mode="sync")(squared_mean_distance)
    second = fair_matching(mode="sync")(squared_mean_distance)
    first(real, syn, groups=groups)
    first(real, syn, groups=groups)
    assert first.stats.calls == 2 and second.stats.calls == 0
    with pytest.raises(ConfigError, match="needs the protected group"):
        second(real, syn)
    first.stats.reset()
    assert first.stats.calls == 0 and not first.stats.groups_seen


# ---------------------------------------------------------------- group sources


def test_group_context_is_picked_up_and_nesting_restores():
    real, syn, groups = make_batch(19)
    other = torch.zeros_like(groups)
    fair = fair_matching(mode="sync")(squared_mean_distance)
    assert current_group_context() is None
    with group_context(groups) as outer:
        assert torch.allclose(fair(real, syn), fairdd_loop(real, syn, groups))
        with group_context(other):
            assert torch.equal(fair(real, syn), squared_mean_distance(real, syn))
        assert current_group_context() is outer
        assert torch.allclose(fair(real, syn), fairdd_loop(real, syn, groups))
    assert current_group_context() is None
    with pytest.raises(ConfigError, match="group_context"):
        fair(real, syn)


def test_group_context_select_records_sampled_rows():
    table = torch.tensor([0, 0, 1, 1, 2, 2, 2, 3])
    weights = torch.arange(1.0, 9.0)
    with group_context(table=table, weight_table=weights) as ctx:
        index = [7, 2, 4]
        assert ctx.select(index) is index
        assert ctx.groups.tolist() == [3, 1, 2] and ctx.weights.tolist() == [8.0, 3.0, 5.0]
        with pytest.raises(InputError, match="does not fit the group table"):
            ctx.select([8])


def test_group_context_is_local_to_a_thread():
    seen = []
    with group_context(torch.tensor([0, 1])):
        worker = threading.Thread(target=lambda: seen.append(current_group_context()))
        worker.start()
        worker.join()
    assert seen == [None]


def test_group_tagged_batches_and_precedence():
    real, syn, groups = make_batch(20)
    tagged = GroupTagged(real, groups)
    assert type(tagged * 2) is torch.Tensor  # operations return plain tensors
    assert torch.equal(squared_mean_distance(tagged, syn), squared_mean_distance(real, syn))
    seen_types = []

    def recording(r, s):
        seen_types.append(type(r))
        return squared_mean_distance(r, s)

    fair = fair_matching(mode="sync")(recording)
    assert torch.allclose(fair(tagged, syn), fairdd_loop(real, syn, groups))
    assert set(seen_types) == {torch.Tensor}
    single = torch.zeros_like(groups)
    with group_context(single):
        assert torch.allclose(fair(tagged, syn), fairdd_loop(real, syn, groups))  # tag beats context
        assert torch.equal(fair(tagged, syn, groups=single), squared_mean_distance(real, syn))  # keyword beats tag


def test_gradients_flow_through_tagged_real_features():
    real, syn, groups = make_batch(21)
    features = real.clone().requires_grad_(True)
    fair = fair_matching(mode="sync", mean_matching=True)(squared_mean_distance)
    value = fair(GroupTagged(features, groups), syn)
    g_real, g_syn = torch.autograd.grad(value, (features, syn))
    reference = fairdd_loop(features, syn, groups)
    r_real, r_syn = torch.autograd.grad(reference, (features, syn))
    assert torch.allclose(g_syn, r_syn, atol=1e-10)
    assert g_real.shape == features.shape and bool(g_real.abs().sum() > 0)


def test_weights_mode_reads_weights_from_context_and_tags():
    real, syn, groups = make_batch(22)
    weights = torch.rand(len(groups), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    fair = fair_matching(mode="weights", mean_matching=True)(squared_mean_distance)
    expected = fair(real, syn, weights=weights)
    with group_context(weights=weights):
        assert torch.allclose(fair(real, syn), expected)
    assert torch.allclose(fair(GroupTagged(real, groups, weights), syn), expected)
    with pytest.raises(ConfigError, match="needs one weight per real row"):
        fair(real, syn)


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"mode": "barycenter"}, ERR_NEEDS_MEAN.format(mode="barycenter")),
        ({"mode": "weights", "strategy": "loop"}, ERR_NEEDS_MEAN.format(mode="weights")),
        ({"strategy": "vmap"}, ERR_STRATEGY.format(strategy="vmap")),
        ({"reduce": "max"}, ERR_REDUCE.format(reduce="max")),
        ({"mode": "fair"}, G.ERR_UNKNOWN_MODE.format(mode="fair")),
        ({"min_group_size": 0}, G.ERR_MIN_GROUP_SIZE.format(value=0)),
    ],
)
def test_decoration_errors(kwargs, message):
    with pytest.raises(ConfigError) as raised:
        fair_matching(**kwargs)(squared_mean_distance)
    assert str(raised.value) == message
    assert "\n" not in message


def test_call_errors():
    real, syn, groups = make_batch(23)
    fair = fair_matching(mode="sync")(squared_mean_distance)
    with pytest.raises(ConfigError) as raised:
        fair(real, syn)
    assert str(raised.value) == ERR_NO_GROUPS.format(mode="sync")
    with pytest.raises(InputError, match=r"groups has 59 entries but the real batch has 60 rows"):
        fair(real, syn, groups=groups[:-1])
    with pytest.raises(InputError, match="first dimension indexes samples"):
        fair("images", syn, groups=groups)
    with pytest.raises(InputError, match="missing syn"):
        fair(real, groups=groups)
    weights_loss = fair_matching(mode="weights", mean_matching=True)(squared_mean_distance)
    with pytest.raises(ConfigError) as raised:
        weights_loss(real, syn)
    assert str(raised.value) == ERR_NO_WEIGHTS
    with pytest.raises(InputError, match="non-negative"):
        weights_loss(real, syn, weights=-torch.ones(len(groups)))
    wrong_shape = fair_matching(mode="sync", strategy="weighted")(lambda r, s, *, row_weights: r.sum())
    with pytest.raises(ConfigError) as raised:
        wrong_shape(real, syn, groups=groups)
    assert str(raised.value) == ERR_WEIGHTED_OUTPUT.format(targets=len(torch.unique(groups)), shape=())


def test_warning_filters_can_silence_small_group_warnings():
    real, syn, _ = make_batch(24, n=4)
    fair = fair_matching(mode="sync", min_group_size=2)(squared_mean_distance)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", SmallGroupWarning)
        fair(real, syn, groups=torch.tensor([0, 0, 1, 2]))
    assert fair.stats.skipped_groups == 2
