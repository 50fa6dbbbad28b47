"""The robustness audit: PGD against the closed-form worst case of a linear model, budgets in raw pixels
through the normalisation, corruptions, cell figures against the metric module, and bad budgets refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.data import load_real
from ddaudit.errors import ConfigError
from ddaudit.robustness import corrupt, parse_budgets, pgd_linf, pixel_maps, robustness_section
from ddaudit.robustness._audit import robust_predictions


def _linear(seed: int = 0) -> torch.nn.Linear:
    torch.manual_seed(seed)
    model = torch.nn.Linear(48, 2)
    return model


def test_pgd_reaches_the_closed_form_worst_case_of_a_linear_model():
    model = _linear()
    x = 0.3 + 0.4 * torch.rand(64, 48)  # interior pixels: the [0, 1] box never binds at these budgets
    y = model(x).argmax(-1)
    eps = 4 / 255
    w = model.weight.detach()
    sign = torch.sign(w[y] - w[1 - y])  # the true class's weight minus the other's
    adv = pgd_linf(model, x, y, eps, steps=10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(adv - x, -eps * sign, atol=1e-6, rtol=0)
    margin = lambda z: (model(z).gather(1, y[:, None]) - model(z).gather(1, (1 - y)[:, None])).squeeze(1)
    drop = (margin(x) - margin(adv)).detach()
    torch.testing.assert_close(drop, eps * (w[0] - w[1]).abs().sum().expand(64), atol=1e-5, rtol=1e-5)


def test_stopping_at_the_first_fooling_iterate_breaks_every_row_plain_pgd_breaks():
    torch.manual_seed(3)
    model = torch.nn.Linear(48, 4)
    x = torch.rand(200, 48)
    y = model(x).argmax(-1)
    eps = 24 / 255
    plain = pgd_linf(model, x, y, eps, steps=10, generator=torch.Generator().manual_seed(1))
    early = pgd_linf(model, x, y, eps, steps=10, generator=torch.Generator().manual_seed(1), stop_on_success=True)
    assert (early - x).abs().max() <= eps + 1e-6 and early.min() >= 0 and early.max() <= 1
    fooled_plain = model(plain).argmax(-1) != y
    fooled_early = model(early).argmax(-1) != y
    assert 0 < fooled_plain.sum() < len(y)  # the budget breaks some rows, not all
    assert bool((fooled_early | ~fooled_plain).all())  # every row plain PGD fools is fooled
    never = ~fooled_early
    torch.testing.assert_close(early[never], plain[never], atol=1e-6, rtol=0)  # same path where nothing stops


def test_the_budget_is_in_raw_pixels_whatever_the_normalisation():
    model = _linear(1)
    mean, std = torch.full((1, 48), 0.2), torch.linspace(0.1, 2.0, 48).view(1, 48)
    to_model = lambda raw: (raw - mean) / std
    x = 0.3 + 0.4 * torch.rand(32, 48)
    y = model(to_model(x)).argmax(-1)
    eps = 2 / 255
    adv = pgd_linf(model, x, y, eps, steps=10, to_model=to_model, generator=torch.Generator().manual_seed(1))
    w = model.weight.detach() / std  # the weights on raw pixels: the same signs
    torch.testing.assert_close(adv - x, -eps * torch.sign(w[y] - w[1 - y]), atol=1e-6, rtol=0)
    # Pixels near the edge stay in [0, 1].
    edge = pgd_linf(model, torch.zeros(4, 48), torch.zeros(4, dtype=torch.long), 0.1, generator=torch.Generator())
    assert edge.min() >= 0 and edge.max() <= 0.1 + 1e-7


def test_corruptions_grow_with_severity():
    raw = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 0.5 + 0.25
    noise = [float((corrupt(raw, "gaussian_noise", s, torch.Generator().manual_seed(0)) - raw).std()) for s in (1, 3, 5)]
    assert noise[0] < noise[1] < noise[2] and abs(noise[0] - 0.04) < 0.005
    spread = [float(corrupt(raw, "contrast", s).std(dim=(-2, -1)).mean()) for s in (1, 3, 5)]
    base = float(raw.std(dim=(-2, -1)).mean())
    np.testing.assert_allclose(spread, [base * 0.75, base * 0.4, base * 0.15], rtol=1e-4)
    blur = [float((corrupt(raw, "gaussian_blur", s) - raw).abs().mean()) for s in (1, 3, 5)]
    assert blur[0] < blur[1] < blur[2]


def test_budgets_parse_as_fractions_of_the_pixel_range_and_others_are_refused():
    assert parse_budgets("8/255, 1/255,0.02") == (1 / 255, 0.02, 8 / 255)
    for bad in ("1.5", "-0.01", "abc", "1/0", ""):
        with pytest.raises(ConfigError, match="in \\[0, 1\\]"):
            parse_budgets(bad)


@pytest.fixture(scope="module")
def trained():
    from ddaudit.evaluate import get_protocol, train_evaluators

    real = load_real("cmnist-fg", n_train=400, n_test=20)
    rows = torch.cat([torch.nonzero(real.train.y == k)[:5, 0] for k in range(10)])
    ensemble = train_evaluators(real.train.x[rows], real.train.y[rows], protocol=get_protocol("quick", model="ConvNetW32", epochs=15),
                                seeds=[1, 2],
                                num_classes=10, precision="fp32", compile="off")
    return real, ensemble


def test_robust_accuracy_per_cell_matches_the_metric_module_and_never_rises(trained):
    from ddaudit.metrics import compute_metrics

    real, ensemble = trained
    section = robustness_section({"distilled": ensemble}, real, "normalized", samples=200, budgets="1/255,8/255",
                                 steps=5, confidence=0.95, seed=0)
    assert section["samples"] == 200 and [row["budget"] for row in section["pgd"]] == [0.0, 1 / 255, 8 / 255]
    accuracies = [row["accuracy"] for row in section["pgd"]]
    assert accuracies[0] >= accuracies[1] >= accuracies[2] and accuracies[2] < accuracies[0]
    assert section["accuracy"] == accuracies[-1] and section["gated_budget"] == 8 / 255
    # The clean row is the ensemble's own prediction of the sampled test images.
    to_raw, to_model, clip = pixel_maps(real, "normalized")
    from ddaudit.robustness import stratified_rows

    rows = stratified_rows(real.test.y.numpy(), real.test.a.numpy(), real.num_groups, 200, 0)
    assert np.bincount(real.test.y.numpy()[rows] * 10 + real.test.a.numpy()[rows]).tolist() == [2] * 100
    preds = ensemble.predict(real.test.x[rows]).numpy()
    y, a = real.test.y.numpy()[rows], real.test.a.numpy()[rows]
    reference = compute_metrics(y, a, preds, num_classes=10, num_groups=10, n_boot=0).metrics
    for name in ("accuracy", "worst_group_accuracy", "deo_max"):
        assert section["pgd"][0][name] == pytest.approx(reference[name]["mean"])
        assert section["pgd"][0][f"{name}_interval"] == pytest.approx(reference[name]["interval"])
    assert len(section["corruptions"]) == 9


class TrainingReached(BaseException):
    pass


def test_cli_refuses_a_budget_outside_the_pixel_range_before_training(tmp_path, monkeypatch):
    import ddaudit.evaluate.engine

    def trap(*args, **kwargs):
        raise TrainingReached()

    for name in ("train_and_predict", "train_evaluators"):
        monkeypatch.setattr(ddaudit.evaluate.engine, name, trap)
    torch.save({"images": torch.randn(10, 3, 32, 32), "labels": torch.arange(10)}, tmp_path / "set.pt")
    monkeypatch.chdir(tmp_path)
    base = ["check", "set.pt", "--real", "cmnist-fg", "--real-option", "n_test=20", "--no-probe"]
    for argv, fragment in (([*base, "--robustness", "--robustness-budgets", "1/255,2"], "in [0, 1]"),
                           ([*base, "--robustness", "--robustness-samples", "0"], "--robustness-samples"),
                           ([*base, "--min-robust-accuracy", "0.5"], "add --robustness")):
        result = CliRunner().invoke(app, argv)
        assert not isinstance(result.exception, TrainingReached)
        assert result.exit_code == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], result.stderr


def test_a_batched_ensemble_is_attacked_evaluator_by_evaluator_like_its_own_predictions(trained):
    from ddaudit.evaluate import get_protocol, train_evaluators
    from ddaudit.evaluate._shared import compute_context
    from ddaudit.robustness._audit import evaluator_forwards
    from functools import partial

    real, _ = trained
    rows = torch.cat([torch.nonzero(real.train.y == k)[:2, 0] for k in range(10)])
    batched = train_evaluators(real.train.x[rows], real.train.y[rows], engine="batched", seeds=[3, 4],
                               protocol=get_protocol("quick", model="ConvNetW32", epochs=3), num_classes=10,
                               precision="fp32")
    to_raw, to_model, clip = pixel_maps(real, "normalized")
    raw = to_raw(real.test.x[:64])
    preds = robust_predictions(evaluator_forwards(batched), raw, real.test.y[:64], (2 / 255,), steps=3,
                               to_model=to_model, clip=clip, context=partial(compute_context, "fp32"), seed=0)
    np.testing.assert_array_equal(preds[0.0], batched.predict(real.test.x[:64]).numpy())
    assert ((preds[2 / 255] == real.test.y[:64].numpy()) <= (preds[0.0] == real.test.y[:64].numpy())).all()
