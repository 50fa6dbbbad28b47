"""Reference distillers: they run, are deterministic, dogfood fair_matching, and save DC files."""

import pytest
import torch
import torch.nn.functional as F

from ddaudit.data import GroupTensors, load_real
from ddaudit.distill import (
    dc_filename,
    distill_dc,
    distill_dm,
    dm_loss,
    get_loops,
    gradient_match_loss,
    match_loss,
    real_gradients,
    save_dc_format,
)
from ddaudit.errors import ConfigError, InputError
from ddaudit.evaluate import create_model
from ddaudit.hooks import fair_matching

SMALL = "ConvNetW32D2"


@pytest.fixture(scope="module")
def real():
    torch.set_num_threads(1)
    return load_real("cmnist-fg", n_train=100, n_test=10, bias_ratio=0.8)


def run_dm(real, **overrides):
    settings = dict(num_classes=10, ipc=2, iterations=3, model=SMALL, batch_real=10, dsa=True, seed=0)
    settings.update(overrides)
    return distill_dm(real.train, **settings)


def run_dc(real, **overrides):
    settings = dict(
        num_classes=10, ipc=1, iterations=2, model=SMALL, batch_real=10, outer_loop=2, inner_loop=1, seed=0
    )
    settings.update(overrides)
    return distill_dc(real.train, **settings)


# ---------------------------------------------------------------- DM


def test_dm_is_deterministic_and_sync_changes_the_result(real):
    first = run_dm(real, mode="sync")
    again = run_dm(real, mode="sync")
    assert torch.equal(first.images, again.images)
    assert first.history == again.history
    assert first.images.shape == (20, 3, 32, 32)
    assert first.labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert not torch.equal(run_dm(real, mode="sync", seed=1).images, first.images)

    vanilla = run_dm(real, mode="none")
    assert not torch.allclose(vanilla.images, first.images, atol=1e-4)
    stats = first.meta["fair_matching"]
    assert stats["calls"] == 30 and stats["group_terms"] > 30  # several colours per class batch
    assert first.meta["method"] == "DM-FairDD" and vanilla.meta["method"] == "DM"


def test_dm_images_move_and_loss_decreases(real):
    start = run_dm(real, iterations=0, dsa=False)
    result = run_dm(real, iterations=6, dsa=False, mode="barycenter", lr_img=1.0)
    assert result.history[-1] < result.history[0]
    assert not torch.allclose(result.images, start.images)


def test_dm_uniform_weights_equal_vanilla(real):
    uniform = run_dm(real, mode="weights", weights=torch.full((len(real.train),), 0.3))
    vanilla = run_dm(real, mode="none")
    assert torch.allclose(uniform.images, vanilla.images, atol=1e-5)


def test_dm_sync_step_equals_explicit_fairdd_step(real):
    """One DM iteration (no DSA) against FairDD's per-group loop written out here."""
    result = run_dm(real, mode="sync", iterations=1, dsa=False, lr_img=0.5)
    start = run_dm(real, mode="sync", iterations=0, dsa=False)

    # Replay the generator draws of distill_dm: init, then model seed, then one batch per class.
    generator = torch.Generator().manual_seed(0)
    rows = [torch.nonzero(real.train.y == c).flatten() for c in range(10)]
    for c in range(10):
        rows[c][torch.randperm(rows[c].numel(), generator=generator)[:2]]
    net_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=generator))
    net = create_model(SMALL, 3, 10, (32, 32), seed=net_seed).requires_grad_(False)
    images = start.images.clone().requires_grad_(True)
    loss = 0
    for c in range(10):
        index = rows[c][torch.randperm(rows[c].numel(), generator=generator)[:10]]
        out_real = net.embed(real.train.x[index])
        out_syn = net.embed(images[c * 2 : (c + 1) * 2])
        colour = real.train.a[index]
        for col in torch.unique(colour):
            loss = loss + torch.sum((out_real[colour == col].mean(0) - out_syn.mean(0)) ** 2)
    loss.backward()
    expected = start.images - 0.5 * images.grad  # first SGD step: momentum buffer = gradient
    assert torch.allclose(result.images, expected, atol=1e-5)


# ---------------------------------------------------------------- DC


def test_dc_is_deterministic_and_sync_changes_the_result(real):
    fair = run_dc(real, mode="sync")
    assert torch.equal(fair.images, run_dc(real, mode="sync").images)
    vanilla = run_dc(real, mode="none")
    assert not torch.allclose(vanilla.images, fair.images, atol=1e-5)
    assert fair.meta["method"] == "DC-FairDD"
    assert fair.meta["fair_matching"]["calls"] == 10 * 2 * 2


def test_dsa_barycenter_and_batchnorm_variants_run(real):
    dsa = run_dc(real, mode="barycenter", dsa=True, iterations=1)
    assert dsa.meta["method"] == "DSA-barycenter" and torch.isfinite(dsa.images).all()
    bn = run_dc(real, model="ConvNetBN", iterations=1, batch_real=4, init="real")
    assert torch.isfinite(bn.images).all() and len(bn.history) == 1


def _class_batch(real, c=3, n=10):
    index = torch.nonzero(real.train.y == c).flatten()[:n]
    return real.train.x[index], real.train.a[index]


def test_fairdd_dc_group_loss_equals_explicit_loop(real):
    torch.manual_seed(0)
    net = create_model(SMALL, 3, 10, (32, 32), seed=4)
    params = list(net.parameters())
    x_real, colour = _class_batch(real)
    colour = colour.clone()
    colour[:3] = (colour[:3] + 4) % 10  # three groups in the batch
    syn = torch.randn(2, 3, 32, 32, requires_grad=True)
    label = 3

    def synthetic_gradient():
        return torch.autograd.grad(F.cross_entropy(net(syn), torch.full((2,), label)), params, create_graph=True)

    # FairDD-DC as published: one forward on the batch, one real gradient per colour.
    gw_syn = synthetic_gradient()
    output_real = net(x_real)
    lab_real = torch.full((len(x_real),), label)
    expected = 0
    for col in torch.unique(colour):
        gw_col = torch.autograd.grad(
            F.cross_entropy(output_real[colour == col], lab_real[colour == col]), params, retain_graph=True
        )
        expected = expected + match_loss(gw_syn, [g.detach() for g in gw_col])
    expected_grad = torch.autograd.grad(expected, syn)[0]

    fair = fair_matching(mode="sync", strategy="weighted")(gradient_match_loss)
    value = fair(x_real, synthetic_gradient(), net=net, label=label, groups=colour)
    assert torch.allclose(value, expected, atol=1e-5)
    assert torch.allclose(torch.autograd.grad(value, syn)[0], expected_grad, atol=1e-5, rtol=1e-4)

    loop = fair_matching(mode="sync", strategy="loop")(gradient_match_loss)
    assert torch.allclose(loop(x_real, synthetic_gradient(), net=net, label=label, groups=colour), expected, atol=1e-5)


def test_real_gradients_with_overlapping_columns(real):
    net = create_model(SMALL, 3, 10, (32, 32), seed=5)
    params = list(net.parameters())
    x_real, _ = _class_batch(real)
    weights = torch.rand(len(x_real), 2, generator=torch.Generator().manual_seed(0))
    weights = weights / weights.sum(0)
    got = real_gradients(net, params, x_real, 3, weights)
    for k in range(2):
        per_sample = F.cross_entropy(net(x_real), torch.full((len(x_real),), 3), reduction="none")
        want = torch.autograd.grad((per_sample * weights[:, k]).sum(), params)
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got[k], want))


def test_match_loss_against_independent_formulas():
    gen = torch.Generator().manual_seed(0)
    shapes = [(4, 3, 3, 3), (4,), (5, 4, 2), (10, 6), (10,)]
    syn = [torch.randn(s, generator=gen) for s in shapes]
    real = [torch.randn(s, generator=gen) for s in shapes]
    ours = sum(
        (1 - F.cosine_similarity(s.reshape(s.shape[0], -1), r.reshape(r.shape[0], -1), dim=1, eps=1e-12)).sum()
        for s, r in zip(syn, real)
        if s.ndim > 1
    )
    assert torch.allclose(match_loss(syn, real, "ours"), ours, atol=1e-5)
    flat_s, flat_r = torch.cat([t.flatten() for t in syn]), torch.cat([t.flatten() for t in real])
    assert torch.allclose(match_loss(syn, real, "mse"), F.mse_loss(flat_s, flat_r, reduction="sum"))
    assert torch.allclose(match_loss(syn, real, "cos"), 1 - F.cosine_similarity(flat_s, flat_r, dim=0), atol=1e-6)
    assert float(match_loss([syn[1]], [real[1]], "ours")) == 0.0  # 1-D parameters are ignored
    with pytest.raises(ConfigError, match="unknown gradient distance 'l2'"):
        match_loss(syn, real, "l2")


def test_get_loops():
    assert get_loops(1) == (1, 1)
    assert get_loops(10) == (10, 50)
    assert get_loops(50) == (50, 10)
    assert get_loops(100) == (100, 10)
    assert get_loops(5) == (10, 50)


# ---------------------------------------------------------------- saving


def test_saved_file_is_datasetcondensation_format(tmp_path, real):
    result = run_dm(real, iterations=1)
    path = result.save(tmp_path / "out" / "set.pt")
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == {"data", "accs_all_exps"}
    images, labels = loaded["data"][0]
    assert torch.equal(images, result.images) and torch.equal(labels, result.labels)
    assert labels.dtype == torch.long and loaded["accs_all_exps"] == {}

    from ddaudit.io import load_synthetic

    synthetic = load_synthetic(path)
    assert synthetic.format == "dc" and torch.equal(synthetic.images, result.images)

    with pytest.raises(InputError, match="already exists; pass force=True"):
        save_dc_format(path, result.images, result.labels)
    save_dc_format(path, result.images * 0, result.labels, force=True)
    assert torch.load(path, weights_only=True)["data"][0][0].abs().sum() == 0

    named = save_dc_format(tmp_path, result.images, result.labels, "DM", dataset="cmnist-fg", model=SMALL)
    assert named.name == dc_filename("DM", "cmnist-fg", SMALL, 2) == f"res_DM_cmnist-fg_{SMALL}_2ipc.pt"
    with pytest.raises(ConfigError, match="needs method="):
        save_dc_format(tmp_path, result.images, result.labels)


def test_save_rejects_bad_tensors(tmp_path):
    with pytest.raises(InputError, match="4-D tensor"):
        save_dc_format(tmp_path / "a.pt", torch.zeros(3, 4), torch.zeros(3, dtype=torch.long))
    with pytest.raises(InputError, match="one label per image"):
        save_dc_format(tmp_path / "a.pt", torch.zeros(3, 1, 2, 2), torch.zeros(2, dtype=torch.long))


# ---------------------------------------------------------------- errors


def test_distiller_argument_errors(real):
    with pytest.raises(ConfigError, match="only used with mode='weights'"):
        run_dm(real, weights=torch.ones(len(real.train)))
    with pytest.raises(ConfigError, match="needs weights="):
        run_dc(real, mode="weights")
    with pytest.raises(InputError, match="fewer than ipc=20"):
        run_dm(real, ipc=20)
    with pytest.raises(ConfigError, match="unknown init"):
        run_dm(real, init="zeros")
    with pytest.raises(InputError, match="GroupTensors"):
        distill_dm(real.train.x, num_classes=10, ipc=1, iterations=1)
    with pytest.raises(InputError, match=r"labels must lie in \[0, 5\)"):
        run_dm(real, num_classes=5)
    few = GroupTensors(real.train.x[:4], torch.tensor([0, 0, 1, 1]), real.train.a[:4])
    with pytest.raises(InputError, match="class 2 has no real images"):
        distill_dm(few, num_classes=3, ipc=1, iterations=1)


def test_dm_loss_is_the_squared_mean_distance():
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(7, 5, generator=gen), torch.randn(3, 5, generator=gen)
    assert torch.allclose(dm_loss(a, b), torch.dist(a.mean(0), b.mean(0)) ** 2)
