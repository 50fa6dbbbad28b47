"""KDE densities and weights (checked against scipy and direct formulas), the SupCon surrogate,
and the issue's acceptance test: on embedded C-MNIST with 5 % bias-conflicting samples,
conflicting samples get at least 5x the mean weight of aligned ones."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.stats import gaussian_kde
from sklearn.metrics import roc_auc_score
from torch.utils._python_dispatch import TorchDispatchMode

from ddaudit.data import load_real
from ddaudit.errors import ConfigError, InputError
from ddaudit.hooks import fair_matching
from ddaudit.hooks.patchers import load_vector
from ddaudit.mitigate import kde, surrogate
from ddaudit.mitigate.kde import (
    class_log_density,
    effective_sample_size,
    inverse_density_weights,
    kde_log_density,
    kde_weights,
    load_weights,
    parse_bandwidth,
    save_weights,
    select_bandwidth,
)
from ddaudit.mitigate.pseudo_groups import pseudo_groups
from ddaudit.mitigate.recovery import group_recovery, weight_recovery
from ddaudit.mitigate.surrogate import (
    SurrogateSettings,
    resolve_device,
    supcon_loss,
    surrogate_embeddings,
    train_surrogate,
)


def _direct_log_density(data: np.ndarray, queries: np.ndarray, h: float, leave_one_out: bool) -> np.ndarray:
    """O(N^2) isotropic Gaussian KDE written out term by term."""
    n, d = data.shape
    out = []
    for i, q in enumerate(queries):
        terms = [
            math.exp(-float(np.sum((q - x) ** 2)) / (2 * h * h))
            for j, x in enumerate(data)
            if not (leave_one_out and i == j)
        ]
        norm = (n - 1 if leave_one_out else n) * (2 * math.pi * h * h) ** (d / 2)
        out.append(math.log(sum(terms) / norm))
    return np.array(out)


def _whitened(n: int, d: int, seed: int) -> torch.Tensor:
    """Data whose sample covariance is exactly the identity."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) @ torch.randn(d, d, generator=g, dtype=torch.float64)
    x = x - x.mean(0)
    chol = torch.linalg.cholesky(torch.cov(x.T))
    return x @ torch.linalg.inv(chol).T


@pytest.mark.parametrize("rule", ["scott", "silverman", "scott-dim", "silverman-dim"])
def test_one_dimensional_density_matches_scipy(rule):
    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(150, 1, generator=g), 3 + 0.5 * torch.randn(50, 1, generator=g)]).double()
    ours = kde_log_density(x, bandwidth=rule).numpy()
    theirs = gaussian_kde(x.numpy().T, bw_method=rule.removesuffix("-dim")).logpdf(x.numpy().T)
    np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_multivariate_density_matches_scipy_when_covariance_is_isotropic(rule):
    x = _whitened(240, 5, seed=2)
    queries = x[:40] * 0.7 + 0.1
    ours = kde_log_density(x, queries, bandwidth=f"{rule}-dim", chunk_size=16).numpy()
    theirs = gaussian_kde(x.numpy().T, bw_method=rule).logpdf(queries.numpy().T)
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-9)


def test_bandwidth_rules_follow_scipy_factors_in_d_dimensions():
    x = _whitened(300, 7, seed=3)
    reference = gaussian_kde(x.numpy().T)
    scott, silverman = reference.scotts_factor(), reference.silverman_factor()
    assert select_bandwidth(x, "scott-dim") == pytest.approx(scott, rel=1e-9)
    assert select_bandwidth(x, "silverman-dim") == pytest.approx(silverman, rel=1e-9)
    assert select_bandwidth(x, "scott") == pytest.approx(scott * math.sqrt(7), rel=1e-9)
    assert select_bandwidth(x, "silverman") == pytest.approx(silverman * math.sqrt(7), rel=1e-9)
    scaled = x * torch.tensor([1.0, 2.0, 3.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    variances = np.var(scaled.numpy(), axis=0, ddof=1)
    assert select_bandwidth(scaled, "scott-dim") == pytest.approx(scott * np.sqrt(variances.mean()), rel=1e-9)
    assert select_bandwidth(scaled, "scott") == pytest.approx(scott * np.sqrt(variances.sum()), rel=1e-9)
    assert select_bandwidth(scaled, 0.25) == 0.25


def test_leave_one_out_and_fixed_bandwidth_match_direct_formula():
    g = torch.Generator().manual_seed(4)
    x = torch.randn(60, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.2, 5.0], dtype=torch.float64)
    for loo in (False, True):
        ours = kde_log_density(x, bandwidth=0.8, leave_one_out=loo, chunk_size=9).numpy()
        np.testing.assert_allclose(ours, _direct_log_density(x.numpy(), x.numpy(), 0.8, loo), rtol=1e-10)


def test_chunked_equals_unchunked():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(100, 16, generator=g)
    for loo in (False, True):
        whole = kde_log_density(x, leave_one_out=loo, chunk_size=1000)
        chunked = kde_log_density(x, leave_one_out=loo, chunk_size=7)
        torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-4)


class _LargestTensor(TorchDispatchMode):
    """Records the largest number of elements of any tensor an operator produces."""

    def __init__(self):
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_memory_is_bounded_by_the_chunk_not_by_n_squared():
    n, d, chunk = 2000, 4, 64
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(6))
    with _LargestTensor() as tracker:
        chunked = kde_log_density(x, leave_one_out=True, chunk_size=chunk)
    assert tracker.largest <= max(chunk * chunk, n * d)
    assert tracker.largest < n * n // 100
    with _LargestTensor() as tracker:
        whole = kde_log_density(x, leave_one_out=True, chunk_size=n)
    assert tracker.largest >= n * n
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-4)


def test_weights_are_inverse_density_with_mean_one_per_class():
    g = torch.Generator().manual_seed(7)
    x = torch.randn(90, 3, generator=g, dtype=torch.float64)
    y = torch.arange(90) % 3
    w = kde_weights(x, y, bandwidth=0.6).double()
    for c in range(3):
        rows = (y == c).numpy()
        data = x.numpy()[rows]
        density = np.exp(_direct_log_density(data, data, 0.6, leave_one_out=True))
        expected = (1 / density) / (1 / density).mean()
        np.testing.assert_allclose(w.numpy()[rows], expected, rtol=1e-5)
        assert w[y == c].mean().item() == pytest.approx(1.0, rel=1e-6)


def test_power_tempers_the_weights():
    log_density = torch.log(torch.tensor([1.0, 2.0, 4.0, 8.0]))
    np.testing.assert_allclose(inverse_density_weights(log_density, power=0.0).numpy(), np.ones(4), rtol=1e-6)
    inverse = np.array([1.0, 0.5, 0.25, 0.125])
    np.testing.assert_allclose(
        inverse_density_weights(log_density, power=1.0).numpy(), inverse / inverse.mean(), rtol=1e-6
    )
    root = np.sqrt(inverse)
    np.testing.assert_allclose(
        inverse_density_weights(log_density, power=0.5).numpy(), root / root.mean(), rtol=1e-6
    )


def test_extreme_log_densities_give_finite_weights():
    log_density = torch.tensor([-900.0, -100.0, 0.0, 50.0])
    w = inverse_density_weights(log_density)
    assert torch.isfinite(w).all()
    assert w[0].item() == pytest.approx(4.0)


def test_max_weight_caps_and_redistributes_in_proportion():
    g = torch.Generator().manual_seed(8)
    log_density = torch.randn(200, generator=g) * 3
    uncapped = inverse_density_weights(log_density)
    capped = inverse_density_weights(log_density, max_weight=2.5)
    assert uncapped.max() > 2.5
    assert capped.max().item() == pytest.approx(2.5, rel=1e-5)
    assert capped.mean().item() == pytest.approx(1.0, rel=1e-5)
    free = capped < 2.5 - 1e-4
    ratio = capped[free] / uncapped[free]
    torch.testing.assert_close(ratio, torch.full_like(ratio, ratio[0].item()), rtol=1e-5, atol=0)
    assert ratio[0] > 1
    assert torch.equal(torch.argsort(uncapped[free]), torch.argsort(capped[free]))


def test_global_normalisation_and_global_density():
    g = torch.Generator().manual_seed(9)
    x = torch.randn(40, 2, generator=g, dtype=torch.float64)
    y = (torch.arange(40) < 30).long()
    w = kde_weights(x, y, per_class=False, normalize="global", bandwidth=0.5).double()
    assert w.mean().item() == pytest.approx(1.0, rel=1e-6)
    density = np.exp(_direct_log_density(x.numpy(), x.numpy(), 0.5, leave_one_out=True))
    np.testing.assert_allclose(w.numpy(), (1 / density) / (1 / density).mean(), rtol=1e-5)


def test_sparse_samples_outweigh_a_dense_cluster():
    g = torch.Generator().manual_seed(10)
    dense = 0.05 * torch.randn(190, 8, generator=g)
    sparse = 1.0 + torch.randn(10, 8, generator=g)
    x = torch.cat([dense, sparse])
    y = torch.zeros(200, dtype=torch.long)
    plain = kde_weights(x, y)
    log_density, _ = class_log_density(x)
    assert int(plain.argmax()) == int(log_density.argmin()) >= 190
    tempered = kde_weights(x, y, power=0.05)
    assert tempered[190:].min() > tempered[:190].max()


def test_degenerate_classes_get_uniform_weights():
    x = torch.cat([torch.ones(4, 3), torch.randn(5, 3, generator=torch.Generator().manual_seed(11)), torch.zeros(1, 3)])
    y = torch.tensor([0] * 4 + [1] * 5 + [2])
    log_density, bandwidths = class_log_density(x, y)
    assert bandwidths[0] == 0.0 and bandwidths[2] == 0.0 and bandwidths[1] > 0
    w = inverse_density_weights(log_density, y)
    torch.testing.assert_close(w[y != 1], torch.ones(5))
    assert w[y == 1].mean().item() == pytest.approx(1.0, rel=1e-6)


def test_progress_reports_each_class():
    calls = []
    class_log_density(torch.randn(30, 2), torch.arange(30) % 3, progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]


def test_parse_bandwidth():
    assert parse_bandwidth("Scott") == "scott"
    assert parse_bandwidth("silverman") == "silverman"
    assert parse_bandwidth("scott-dim") == "scott-dim"
    assert parse_bandwidth("0.3") == 0.3
    for bad in ("wide", "-1", "0", "nan"):
        with pytest.raises(ConfigError, match="bandwidth must be"):
            parse_bandwidth(bad)


def test_errors_are_one_line_and_named():
    x = torch.randn(10, 2)
    cases = [
        (ConfigError, kde.ERR_BANDWIDTH.format(value="wide"), lambda: kde_log_density(x, bandwidth="wide")),
        (InputError, kde.ERR_EMBEDDINGS.format(shape=(10,)), lambda: kde_log_density(torch.randn(10))),
        (ConfigError, kde.ERR_LOO_QUERIES, lambda: kde_log_density(x, x.clone(), leave_one_out=True)),
        (ConfigError, kde.ERR_CHUNK.format(value=0), lambda: kde_log_density(x, chunk_size=0)),
        (InputError, kde.ERR_QUERIES.format(got=3, want=2), lambda: kde_log_density(x, torch.randn(4, 3))),
        (InputError, kde.ERR_NOT_FINITE, lambda: kde_log_density(torch.full((3, 2), float("nan")))),
        (InputError, kde.ERR_DEGENERATE, lambda: kde_log_density(torch.ones(5, 2))),
        (ConfigError, kde.ERR_POWER.format(value=-1), lambda: inverse_density_weights(torch.zeros(3), power=-1)),
        (ConfigError, kde.ERR_NORMALIZE.format(value="row"), lambda: inverse_density_weights(torch.zeros(3), normalize="row")),
        (ConfigError, kde.ERR_MAX_WEIGHT.format(value=0.5), lambda: inverse_density_weights(torch.zeros(3), max_weight=0.5)),
        (InputError, kde.ERR_LABELS.format(got=(4,), want=10), lambda: kde_weights(x, torch.zeros(4, dtype=torch.long))),
    ]
    for error, message, call in cases:
        with pytest.raises(error) as info:
            call()
        assert str(info.value) == message
        assert "\n" not in message


# --- SupCon surrogate --------------------------------------------------------------------


def _supcon_by_hand(z: torch.Tensor, y: torch.Tensor, t: float) -> float:
    """Khosla et al.'s L_out, one anchor and one positive at a time."""
    n, total, anchors = len(y), 0.0, 0
    for i in range(n):
        others = [a for a in range(n) if a != i]
        denominator = sum(math.exp(float(z[i] @ z[a]) / t) for a in others)
        positives = [p for p in others if y[p] == y[i]]
        if not positives:
            continue
        total += -sum(math.log(math.exp(float(z[i] @ z[p]) / t) / denominator) for p in positives) / len(positives)
        anchors += 1
    return total / anchors


def test_supcon_loss_matches_the_formula():
    g = torch.Generator().manual_seed(12)
    z = torch.nn.functional.normalize(torch.randn(14, 6, generator=g, dtype=torch.float64), dim=1)
    y = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 0, 1, 2, 2, 1, 4])
    for t in (0.1, 0.5):
        assert supcon_loss(z, y, t).item() == pytest.approx(_supcon_by_hand(z, y, t), rel=1e-9)


def test_supcon_loss_prefers_class_clusters():
    y = torch.arange(20) % 4
    clustered = torch.nn.functional.normalize(torch.eye(8)[y] + 0.05 * torch.randn(20, 8), dim=1)
    shuffled = clustered[torch.randperm(20, generator=torch.Generator().manual_seed(0))]
    assert supcon_loss(clustered, y) < supcon_loss(shuffled, y)


def test_surrogate_is_deterministic_for_a_seed():
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(13)
    x, y = torch.randn(48, 3, 16, 16, generator=g), torch.arange(48) % 4
    settings = SurrogateSettings(model="ConvNetW32D1", epochs=1, batch_size=16, head_dim=32, proj_dim=8, seed=3)
    first = surrogate_embeddings(x, y, settings, num_classes=4)
    second = surrogate_embeddings(x, y, settings, num_classes=4)
    other = surrogate_embeddings(x, y, SurrogateSettings(**{**settings.to_dict(), "seed": 4}), num_classes=4)
    assert first.shape == (48, 8)
    torch.testing.assert_close(first.norm(dim=1), torch.ones(48))
    assert torch.equal(first, second)
    assert not torch.allclose(first, other)


def test_surrogate_errors():
    with pytest.raises(ConfigError) as info:
        SurrogateSettings(epochs=0)
    assert str(info.value) == surrogate.ERR_SETTING.format(name="epochs", value=0)
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda:99")
    assert str(info.value).startswith("--device cuda:99 was asked for but")
    with pytest.raises(InputError):
        train_surrogate(torch.randn(4, 3, 8), torch.zeros(4, dtype=torch.long))


# --- The acceptance test on the embedded preset ------------------------------------


@pytest.fixture(scope="module")
def cmnist():
    """A SupCon surrogate trained on 600 embedded C-MNIST digits with 5 % bias-conflicting samples."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    real = load_real("cmnist-fg", bias_ratio=0.95, n_train=600, n_test=10, seed=0)
    settings = SurrogateSettings(model="ConvNetW32", epochs=3, batch_size=64, seed=0)
    embeddings = surrogate_embeddings(real.train.x, real.train.y, settings, num_classes=real.num_classes)
    torch.set_num_threads(threads)
    return real, embeddings


def test_bias_conflicting_samples_get_at_least_five_times_the_weight(cmnist):
    real, embeddings = cmnist
    aligned = real.meta["bias_aligned_train"]
    assert 0.03 < float((~aligned).float().mean()) < 0.07
    weights = kde_weights(embeddings, real.train.y)
    for c in range(real.num_classes):
        assert weights[real.train.y == c].mean().item() == pytest.approx(1.0, rel=1e-5)
    ratio = weights[~aligned].mean() / weights[aligned].mean()
    summary = weight_recovery(weights, aligned)
    assert summary["ratio"] == pytest.approx(float(ratio), rel=1e-5)
    print(f"conflicting/aligned mean weight ratio {summary['ratio']:.1f}, AUC {summary['auc']:.3f}")
    assert summary["ratio"] >= 5.0
    assert summary["auc"] > 0.8


def test_effective_sample_size_by_hand():
    weights = torch.tensor([1.0, 1.0, 1.0, 1.0, 4.0, 0.0, 0.0])
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    assert effective_sample_size(weights, labels) == {0: pytest.approx(4.0), 1: pytest.approx(1.0)}
    assert effective_sample_size(weights)[0] == pytest.approx(64.0 / 20.0)


def test_textbook_bandwidth_collapses_weights_onto_one_sample(cmnist):
    real, embeddings = cmnist
    y = real.train.y

    def mean_effective_size(weights):
        return float(np.mean(list(effective_sample_size(weights, y).values())))

    per_dimension = mean_effective_size(kde_weights(embeddings, y, bandwidth="scott-dim"))
    total = mean_effective_size(kde_weights(embeddings, y, bandwidth="scott"))
    assert per_dimension < 1.5
    assert total > 2 * per_dimension


def test_pseudo_groups_recover_colour_groups_on_cmnist(cmnist):
    real, embeddings = cmnist
    groups = pseudo_groups(embeddings, real.train.y)
    summary = group_recovery(groups, real.train.a, real.train.y)
    print(f"pseudo-group ARI {summary['ari']:.3f}")
    assert summary["ari"] > 0.6
    aligned = real.meta["bias_aligned_train"]
    assert float((groups[aligned] == 0).float().mean()) > 0.95


def test_weights_file_round_trips_and_feeds_fair_matching(cmnist, tmp_path):
    real, embeddings = cmnist
    weights = kde_weights(embeddings, real.train.y)
    path = save_weights(tmp_path / "w.pt", weights, settings={"bandwidth": "scott"}, dataset=real.name, labels=real.train.y)
    with pytest.raises(ConfigError) as info:
        save_weights(path, weights, settings={}, dataset=real.name)
    assert str(info.value) == kde.ERR_FILE_EXISTS.format(path=path)
    loaded = load_weights(path)
    assert torch.equal(loaded["weights"], weights) and torch.equal(loaded["labels"], real.train.y)
    assert loaded["dataset"] == real.name and loaded["settings"] == {"bandwidth": "scott"}
    np.testing.assert_array_equal(load_vector(path, "weights"), weights.numpy())

    @fair_matching(mode="weights", mean_matching=True)
    def mean_distance(real_rows, syn):
        return ((real_rows.mean(0) - syn.mean(0)) ** 2).sum()

    rows = real.train.y == 2
    x = real.train.x[rows].flatten(1)
    w = loaded["weights"][rows]
    syn = torch.zeros(5, x.shape[1])
    target = (w[:, None] * x).sum(0) / w.sum()
    assert mean_distance(x, syn, weights=w).item() == pytest.approx(float((target**2).sum()), rel=1e-4)
    colours = real.train.a[rows]
    barycenter = torch.stack([x[colours == g].mean(0) for g in torch.unique(colours)]).mean(0)
    assert (target - barycenter).norm() < 0.7 * (x.mean(0) - barycenter).norm()


def test_weights_file_errors(tmp_path):
    with pytest.raises(InputError) as info:
        load_weights(tmp_path / "missing.pt")
    assert str(info.value) == kde.ERR_FILE_MISSING.format(path=tmp_path / "missing.pt")
    torch.save({"groups": torch.zeros(3, dtype=torch.long)}, tmp_path / "g.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a tensor file")
    for name in ("g.pt", "junk.pt"):
        with pytest.raises(InputError) as info:
            load_weights(tmp_path / name)
        assert str(info.value) == kde.ERR_FILE_CONTENT.format(path=tmp_path / name)


# --- `ddaudit weights` ---------------------------------------------------------------------


def _invoke(*args: str):
    from typer.testing import CliRunner

    from ddaudit.cli import app

    return CliRunner().invoke(app, ["weights", *args])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def test_cli_writes_aligned_weights_and_groups(tmp_path):
    from ddaudit.cli import weights as cli

    torch.set_num_threads(1)
    out, groups_out = tmp_path / "w.pt", tmp_path / "g.pt"
    tiny = ["--real", "cmnist-fg", "--bias-ratio", "0.9", "--real-option", "n_train=100", "--real-option", "n_test=10",
            "--model", "ConvNetW32D1", "--epochs", "1", "--batch-size", "50", "--device", "cpu", "--seed", "1"]
    json_out = tmp_path / "w.json"
    result = _invoke(*tiny, "-o", str(out), "--pseudo-groups", str(groups_out), "--json", str(json_out))
    assert result.exit_code == 0, result.output
    assert "bias-conflicting mean weight" in result.output and "adjusted Rand index" in result.output
    assert "effective sample size per class" in result.output
    saved = load_weights(out)
    real = load_real("cmnist-fg", bias_ratio=0.9, n_train=100, n_test=10)
    assert torch.equal(saved["labels"], real.train.y)
    assert saved["weights"].shape == (100,) and saved["dataset"] == "cmnist-fg"
    for c in range(10):
        assert saved["weights"][real.train.y == c].mean().item() == pytest.approx(1.0, rel=1e-5)
    assert saved["settings"]["bandwidth"] == "scott" and saved["settings"]["surrogate"]["seed"] == 1
    assert saved["recovery"]["ratio"] == pytest.approx(
        weight_recovery(saved["weights"], real.meta["bias_aligned_train"])["ratio"]
    )
    groups = torch.load(groups_out, weights_only=True)
    assert groups["groups"].shape == (100,) and groups["recovery"]["ari"] == pytest.approx(
        group_recovery(groups["groups"], real.train.a, real.train.y)["ari"]
    )
    report = json.loads(json_out.read_text())
    aligned = real.meta["bias_aligned_train"].numpy()
    w = saved["weights"].numpy()
    assert report["recovery"]["auc"] == pytest.approx(roc_auc_score(~aligned, w))
    assert report["recovery"]["weight_ratio"] == pytest.approx(w[~aligned].mean() / w[aligned].mean(), rel=1e-5)
    assert report["recovery"]["ari"] == pytest.approx(groups["recovery"]["ari"])
    for c in range(10):
        wc = w[real.train.y.numpy() == c]
        assert report["ess"][str(c)] == pytest.approx(wc.sum() ** 2 / (wc**2).sum(), rel=1e-5)
    assert report["settings"]["surrogate"] == "bias" and report["settings"]["bias_model"]["seed"] == 1
    assert report["power"] == saved["settings"]["power"]

    refused = _invoke(*tiny, "-o", str(out))
    assert refused.exit_code == 2 and "--force" in _one_line(refused.output)
    again = _invoke(*tiny, "-o", str(out), "--force")
    assert again.exit_code == 0, again.output
    assert torch.equal(load_weights(out)["weights"], saved["weights"])
    assert cli.ERR_SAME_OUTPUT in _one_line(_invoke(*tiny, "-o", str(out), "--pseudo-groups", str(out), "--force").output)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--bandwidth", "wide"], kde.ERR_BANDWIDTH.format(value="wide")),
        (["--device", "cuda:99"], "--device cuda:99 was asked for but"),
        (["--pseudo-groups", "PSEUDO", "--pseudo-method", "kmeans"], "--pseudo-method kmeans needs --n-groups"),
        (["--pseudo-method", "optics"], "--pseudo-method must be 'prediction', 'dbscan' or 'kmeans'"),
        (["--surrogate", "supcon"], "--pseudo-method prediction needs --surrogate bias"),
        (["--surrogate", "other"], "surrogate must be 'bias' or 'supcon'"),
        (["--stop", "never"], "stop must be 'plateau' or 'fixed'"),
        (["--min-ess", "2"], "min_ess must be a fraction"),
        (["--json", "OUT"], "--output, --pseudo-groups and --json must be different files"),
        (["--normalize", "row"], "--normalize must be 'class' or 'global'"),
        (["--epochs", "0"], "bias-model setting epochs=0 must be a positive number"),
        (["--surrogate", "supcon", "--pseudo-method", "dbscan", "--epochs", "0"], surrogate.ERR_SETTING.format(name="epochs", value=0)),
        (["--chunk-size", "0"], kde.ERR_CHUNK.format(value=0)),
        (["--max-weight", "0.5"], kde.ERR_MAX_WEIGHT.format(value=0.5)),
        (["--power", "-1"], kde.ERR_POWER.format(value=-1.0)),
        (["--pseudo-groups", "PSEUDO", "--eps", "-2"], "eps must be a positive number"),
        (["--real-option", "bias_ratio=2"], "bias_ratio"),
    ],
)
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, flags, message):
    flags = [str(tmp_path / "g.pt") if f == "PSEUDO" else str(tmp_path / "w.pt") if f == "OUT" else f for f in flags]
    result = _invoke("--real", "cmnist-fg", "-o", str(tmp_path / "w.pt"), *flags)
    assert result.exit_code == 2, result.output
    assert message in _one_line(result.output)
    assert "Traceback" not in result.output
    assert not (tmp_path / "w.pt").exists()


def test_cli_unknown_preset():
    result = _invoke("--real", "no-such-data", "-o", "unused.pt")
    assert result.exit_code == 2
    assert "unknown dataset preset 'no-such-data'" in _one_line(result.output)
