"""The membership-inference audit: ROC figures against scikit-learn, attacks on models that did and did
not see their members, the composition-matched split, and bad input refused before training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score, roc_curve
from typer.testing import CliRunner

from ddaudit.cli import app
from ddaudit.data import GroupTensors, RealData, load_real
from ddaudit.errors import InputError
from ddaudit.privacy import (
    as_member_mask, attack_figures, auc, log_confidence, membership_split, needed_non_members, privacy_section,
    scaled_confidence, tpr_at_fpr,
)


def test_auc_and_tpr_at_fpr_agree_with_sklearn():
    rng = np.random.default_rng(3)
    for _ in range(60):
        n1, n0 = rng.integers(1, 400, size=2)
        members = np.round(rng.normal(0.4, 1.0, n1), 1)  # rounded: ties between and within the classes
        non_members = np.round(rng.normal(0.0, 1.0, n0), 1)
        truth = np.r_[np.ones(n1), np.zeros(n0)]
        scores = np.r_[members, non_members]
        assert abs(auc(members, non_members) - roc_auc_score(truth, scores)) < 1e-9
        fpr, tpr, _ = roc_curve(truth, scores, drop_intermediate=False)
        for target in (0.001, 0.01, 0.05, 0.3):
            assert abs(tpr_at_fpr(members, non_members, target) - tpr[fpr <= target].max()) < 1e-9
    # Along a leading axis (how the bootstrap calls them): row by row the same numbers.
    s1, s0 = rng.normal(0.5, 1, (5, 300)), rng.normal(0, 1, (5, 200))
    np.testing.assert_allclose(auc(s1, s0), [roc_auc_score(np.r_[np.ones(300), np.zeros(200)], np.r_[a, b])
                                             for a, b in zip(s1, s0)], atol=1e-12)
    assert needed_non_members(0.01) == 100 and needed_non_members(0.001) == 1000


def test_scores_are_the_loss_and_the_logit_scaled_confidence():
    logits = torch.randn(2, 50, 10) * 3
    labels = torch.randint(0, 10, (50,))
    p = torch.softmax(logits.double(), -1).gather(-1, labels.view(1, -1, 1).expand(2, -1, 1)).squeeze(-1)
    np.testing.assert_allclose(log_confidence(logits, labels), np.log(p.numpy()), atol=1e-10)
    np.testing.assert_allclose(scaled_confidence(logits, labels), np.log(p.numpy() / (1 - p.numpy())), atol=1e-8)


def _train_mlp(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = 300) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(), torch.nn.Linear(256, 4))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(epochs):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def test_a_model_that_memorised_its_members_is_exposed_and_one_that_never_saw_them_is_not():
    # Random labels on noise: the only way to fit them is to memorise each member.
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(600, 20, generator=gen)
    y = torch.randint(0, 4, (600,), generator=gen)
    members, non_members, others = slice(0, 200), slice(200, 400), slice(400, 600)
    candidates = torch.cat([x[members], x[non_members]])
    labels = torch.cat([y[members], y[non_members]])
    is_member = np.r_[np.ones(200, bool), np.zeros(200, bool)]
    memorising = [_train_mlp(x[members], y[members], s) for s in (1, 2)]
    never_saw = [_train_mlp(x[others], y[others], s) for s in (3, 4)]
    with torch.no_grad():
        memorised = torch.stack([model(candidates) for model in memorising])
        unseen = torch.stack([model(candidates) for model in never_saw])
    assert (memorised[:, :200].argmax(-1) == y[members]).float().mean() > 0.99
    exposed = attack_figures(log_confidence(memorised, labels), is_member, n_boot=200, confidence=0.95, seed=0)
    hidden = attack_figures(log_confidence(unseen, labels), is_member, n_boot=200, confidence=0.95, seed=0)
    assert exposed["auc"] > 0.95 and exposed["auc_interval"][0] > 0.9
    assert abs(hidden["auc"] - 0.5) < 0.08 and hidden["auc_interval"][0] < 0.5 < hidden["auc_interval"][1]
    assert exposed["tpr_at_fpr_1pct"] > 0.3 and exposed["tpr_at_fpr_0_1pct"] is None  # 200 non-members < 1000
    assert "1000 non-members" in exposed["tpr_at_fpr_0_1pct_note"]
    # The unseen models are OUT models for every candidate: they calibrate the attack on the memorised ones.
    a = torch.zeros(400, dtype=torch.long)
    section = privacy_section(memorised, labels, a, is_member, reference_logits={"random_subset": unseen},
                              in_reference_subset=None, n_boot=100, confidence=0.95, seed=0,
                              class_names=list("abcd"), group_names=["g"], source="test")
    assert section["attacks"]["calibrated"]["auc"] > 0.85  # OUT models of random labels add their own noise
    assert section["references"]["random_subset"]["auc"] == pytest.approx(hidden["auc"])
    assert section["auc"] == max(section["attacks"][n]["auc"] for n in section["attacks"])
    assert section["amplification"]["random_subset"]["auc_difference"] == pytest.approx(exposed["auc"] - hidden["auc"])


@pytest.fixture(scope="module")
def real():
    return load_real("cmnist-fg")


def test_non_members_are_unseen_digits_with_the_members_composition(real):
    split = membership_split(real, seed=0)
    assert len(split.members) == len(real.train) and len(split.non_members_train) == 0
    digits = real.meta["test_digit"].numpy()[split.non_members_test]
    assert len(set(digits)) == len(digits) == 1000  # each test digit once, in one colour
    y, a = real.test.y.numpy()[split.non_members_test], real.test.a.numpy()[split.non_members_test]
    ty, ta = real.train.y.numpy(), real.train.a.numpy()
    for cls in range(10):
        want = np.bincount(ta[ty == cls], minlength=10) / (ty == cls).sum()
        got = np.bincount(a[y == cls], minlength=10)
        assert np.abs(got - want * got.sum()).max() < 1  # largest-remainder rounding of the members' shares
    # With a --members mask, unused training rows join the non-members, still matched by class and group.
    mask = np.zeros(len(real.train), bool)
    mask[::2] = True
    masked = membership_split(real, mask, seed=0)
    assert set(masked.members) == set(np.flatnonzero(mask))
    assert len(masked.non_members_train) > 0 and not mask[masked.non_members_train].any()


def test_bad_member_masks_and_overlapping_splits_are_refused(real):
    n = len(real.train)
    with pytest.raises(InputError, match="holds 3 values but cmnist-fg has 4000 training rows"):
        as_member_mask([1, 0, 1], n, "cmnist-fg")
    with pytest.raises(InputError, match="0/1"):
        as_member_mask(np.full(n, 2), n)
    with pytest.raises(InputError, match="no training row"):
        as_member_mask(np.zeros(n), n)
    train = GroupTensors(real.train.x[:200], real.train.y[:200], real.train.a[:200])
    leaky = RealData.from_splits("leaky", test=train, train=train, class_names=real.class_names,
                                 group_names=real.group_names, mean=real.mean, std=real.std)
    with pytest.raises(InputError, match="pixel-identical to member rows"):
        membership_split(leaky)


class TrainingReached(BaseException):
    pass


@pytest.fixture
def cli(tmp_path, monkeypatch, real):
    """A folder with a tiny set, and training replaced by a trap."""
    import ddaudit.evaluate.engine

    def trap(*args, **kwargs):
        raise TrainingReached()

    for name in ("train_and_predict", "train_evaluators"):
        monkeypatch.setattr(ddaudit.evaluate.engine, name, trap)
    rows = torch.cat([torch.nonzero(real.train.y == k)[:1, 0] for k in range(10)])
    torch.save({"images": real.train.x[rows], "labels": real.train.y[rows]}, tmp_path / "set.pt")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _one_line_exit_2(argv: list[str]) -> str:
    result = CliRunner().invoke(app, argv)
    assert not isinstance(result.exception, TrainingReached), "reached training before refusing the input"
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


CHECK = ["check", "set.pt", "--real", "cmnist-fg", "--no-probe", "--num-eval", "1"]


def test_cli_refuses_a_members_file_of_the_wrong_length(cli):
    (cli / "members.txt").write_text("1\n0\n1\n")
    line = _one_line_exit_2([*CHECK, "--privacy", "--members", "members.txt"])
    assert "--members holds 3 values" in line
    (cli / "members.npy").write_bytes(b"")
    np.save(cli / "members.npy", np.ones(4000, dtype=np.int64) * 3)
    assert "0/1" in _one_line_exit_2([*CHECK, "--privacy", "--members", "members.npy"])
    assert "add --privacy" in _one_line_exit_2([*CHECK, "--members", "members.txt"])
    assert "add --privacy" in _one_line_exit_2([*CHECK, "--max-mia-auc", "0.6"])


def test_cli_refuses_non_members_that_overlap_members(cli, monkeypatch, real):
    import ddaudit.data

    train = GroupTensors(real.train.x[:300], real.train.y[:300], real.train.a[:300])
    leaky = RealData.from_splits("cmnist-fg", test=train, train=train, class_names=real.class_names,
                                 group_names=real.group_names, mean=real.mean, std=real.std)
    monkeypatch.setattr(ddaudit.data, "load_real", lambda *args, **kwargs: leaky)
    assert "pixel-identical" in _one_line_exit_2([*CHECK, "--privacy"])


def test_the_attack_sections_leave_the_fairness_report_unchanged():
    from ddaudit import audit
    from ddaudit.io import SyntheticSet

    small = load_real("cmnist-fg", n_train=400, n_test=20)
    rows = torch.cat([torch.nonzero(small.train.y == k)[:2, 0] for k in range(10)])
    syn = SyntheticSet(images=small.train.x[rows].clone(), labels=small.train.y[rows].clone(), format="tensors",
                       path="tiny")
    options = dict(protocol="quick", protocol_overrides={"model": "ConvNetW32", "epochs": 3}, num_eval=2, n_boot=20,
                   device="cpu", precision="fp32", compile="off")
    plain = audit(syn, small, **options).to_dict()
    attacked = audit(syn, small, privacy=True, robustness=True, robustness_samples=50, robustness_budgets="8/255",
                     pgd_steps=2, **options).to_dict()
    privacy, robustness = attacked.pop("privacy"), attacked.pop("robustness")
    assert attacked == plain
    assert privacy["members"] == 400 and privacy["non_members"] == 20  # the 20 test digits, one colour each
    assert privacy["attacks"]["calibrated"]["left_out_reference_rows"] == 20  # the reference subset's own rows
    assert robustness["samples"] == 50 and robustness["references"]["random_subset"]["pgd"][0]["accuracy"] is not None
