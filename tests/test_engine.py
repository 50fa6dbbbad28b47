"""Evaluator training: the batched engine is the sequential training, protocols, determinism, errors."""

import pytest
import torch
import torch.nn.functional as F

from ddaudit.errors import ConfigError, InputError
from ddaudit.evaluate import (
    MTT_NEEDS_LR,
    BatchedEnsemble,
    Protocol,
    SequentialEnsemble,
    available_protocols,
    choose_engine,
    create_model,
    get_protocol,
    sgd_step,
    train_and_predict,
    train_evaluators,
)
from ddaudit.evaluate._shared import (
    COMPILE_MIN_PREDICTIONS,
    COMPILE_MIN_TRAIN_STEPS,
    CompilePlan,
    EvaluatorRandomness,
    plan_compile,
    predict_in_batches,
    resolve_precision,
)

TINY = "ConvNetW32D1"


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def blobs(n_per_class=6, classes=3, size=8, seed=0, noise=0.3):
    """Classes told apart by their mean colour: an easy, separable task."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 1.5], [1.0, 1.0, -1.0]])[:classes]
    y = torch.arange(classes).repeat_interleave(n_per_class)
    x = colours[y].view(-1, 3, 1, 1) + noise * torch.randn(len(y), 3, size, size, generator=g)
    return x, y


def tiny_protocol(**overrides):
    settings = dict(model=TINY, epochs=4, batch_size=5, lr=0.05)
    settings.update(overrides)
    return get_protocol("quick", **settings)


# ---- the key property: batched == sequential ------------------------------------------------


@pytest.mark.parametrize("model,aug", [(TINY, "none"), ("MLP", "none"), (TINY, "dsa")])
def test_batched_training_is_the_sequential_training(model, aug):
    x, y = blobs()
    test_x, _ = blobs(seed=1)
    protocol = tiny_protocol(model=model, aug=aug)
    seeds = [3, 11, 12]
    sequential = train_evaluators(x, y, protocol=protocol, seeds=seeds, num_classes=3, engine="sequential", precision="fp32")
    batched = train_evaluators(x, y, protocol=protocol, seeds=seeds, num_classes=3, engine="batched", precision="fp32")
    assert isinstance(sequential, SequentialEnsemble) and isinstance(batched, BatchedEnsemble)
    for seq_state, bat_state in zip(sequential.state_dicts(), batched.state_dicts(), strict=True):
        assert seq_state.keys() == bat_state.keys()
        for name in seq_state:
            torch.testing.assert_close(bat_state[name], seq_state[name], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(batched.logits(test_x), sequential.logits(test_x), rtol=1e-4, atol=1e-5)
    # and training moved the weights away from their initialisation
    init = create_model(model, 3, 3, (8, 8), seed=EvaluatorRandomness.from_seed(3).init_seed).state_dict()
    assert max((init[k] - sequential.state_dicts()[0][k]).abs().max() for k in init) > 1e-3


def test_batched_state_dicts_load_into_plain_models():
    x, y = blobs()
    batched = train_evaluators(x, y, protocol=tiny_protocol(epochs=2), seeds=[1, 2], num_classes=3, engine="batched", precision="fp32")
    model = create_model(TINY, 3, 3, (8, 8))
    model.load_state_dict(batched.state_dicts()[1])
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(x), batched.logits(x)[1], rtol=1e-4, atol=1e-5)


def test_an_evaluator_does_not_depend_on_its_chunk_or_neighbours():
    x, y = blobs()
    test_x, _ = blobs(seed=2)
    protocol = tiny_protocol(aug="dsa", epochs=3)
    together = train_evaluators(x, y, protocol=protocol, seeds=[4, 5, 6], num_classes=3, engine="batched", precision="fp32")
    chunked = train_evaluators(
        x, y, protocol=protocol, seeds=[4, 5, 6], num_classes=3, engine="batched", max_batched=2, precision="fp32"
    )
    alone = train_evaluators(x, y, protocol=protocol, seeds=[6], num_classes=3, engine="sequential", precision="fp32")
    logits = together.logits(test_x)
    torch.testing.assert_close(chunked.logits(test_x), logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(alone.logits(test_x)[0], logits[2], rtol=1e-4, atol=1e-5)


# ---- the schedule, checked against a hand-written DC-style loop --------------------------------


def test_sequential_engine_follows_the_documented_schedule():
    """Full-batch training (order irrelevant): lr for epochs//2 epochs, then lr*0.1 with fresh momentum."""
    x, y = blobs(n_per_class=4)
    protocol = tiny_protocol(model="MLP", epochs=6, batch_size=64, lr=0.1)
    engine = train_evaluators(x, y, protocol=protocol, seeds=[9], num_classes=3, engine="sequential", precision="fp32")

    model = create_model("MLP", 3, 3, (8, 8), seed=EvaluatorRandomness.from_seed(9).init_seed)
    for lr, epochs in ((0.1, 3), (0.01, 3)):
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        for _ in range(epochs):
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
    with torch.no_grad():
        torch.testing.assert_close(engine.logits(x)[0], model(x), rtol=1e-4, atol=1e-5)


def test_sgd_step_matches_torch_optim_sgd():
    g = torch.Generator().manual_seed(0)
    params = [torch.randn(2, 4, 3, generator=g), torch.randn(2, 5, generator=g)]
    reference = [torch.nn.Parameter(p[i].clone()) for i in range(2) for p in params]
    optimizers = [
        torch.optim.SGD(reference[2 * i : 2 * i + 2], lr=0.1, momentum=0.9, weight_decay=0.01) for i in range(2)
    ]
    buffers = None
    for step in range(3):
        grads = [torch.randn(p.shape, generator=g) for p in params]
        buffers = sgd_step(params, grads, buffers, lr=0.1, momentum=0.9, weight_decay=0.01)
        for i in range(2):
            reference[2 * i].grad, reference[2 * i + 1].grad = grads[0][i], grads[1][i]
            optimizers[i].step()
    for i in range(2):
        torch.testing.assert_close(params[0][i], reference[2 * i].detach())
        torch.testing.assert_close(params[1][i], reference[2 * i + 1].detach())


# ---- determinism, seeds, labels, accuracy ----------------------------------------------------


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_same_seeds_same_predictions(engine):
    x, y = blobs()
    test_x, _ = blobs(seed=3, noise=1.5)
    protocol = tiny_protocol(aug="dsa", epochs=2)
    runs = [
        train_evaluators(x, y, protocol=protocol, seeds=[1, 2], num_classes=3, engine=engine).logits(test_x)
        for _ in range(2)
    ]
    assert torch.equal(runs[0], runs[1])
    assert not torch.allclose(runs[0][0], runs[0][1])  # different seeds, different evaluators


def test_soft_labels_one_hot_equal_hard_labels_and_logits_are_softmaxed():
    x, y = blobs()
    protocol = tiny_protocol(epochs=2)
    hard = train_evaluators(x, y, protocol=protocol, seeds=[1], num_classes=3, engine="sequential", precision="fp32").logits(x)
    one_hot = F.one_hot(y, 3).float()
    soft = train_evaluators(x, one_hot, protocol=protocol, seeds=[1], num_classes=3, engine="sequential", precision="fp32").logits(x)
    torch.testing.assert_close(soft, hard)
    logits = torch.randn(len(y), 3, generator=torch.Generator().manual_seed(0)) * 3
    from_logits = train_evaluators(x, logits, protocol=protocol, seeds=[1, 2], num_classes=3, engine="batched", precision="fp32")
    from_probs = train_evaluators(
        x, torch.softmax(logits, -1), protocol=protocol, seeds=[1, 2], num_classes=3, engine="batched", precision="fp32"
    )
    torch.testing.assert_close(from_logits.logits(x), from_probs.logits(x))
    assert not torch.allclose(from_probs.logits(x)[0], hard[0], atol=1e-3)


@pytest.mark.parametrize("engine", ["sequential", "batched"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_easy_task_is_learned(engine, precision):
    x, y = blobs(n_per_class=8, classes=4)
    test_x, test_y = blobs(n_per_class=25, classes=4, seed=5)
    predictions = train_and_predict(
        x, y, test_x, protocol=tiny_protocol(epochs=5, batch_size=8), seeds=[0, 1], num_classes=4, engine=engine,
        precision=precision,
    )
    assert predictions.dtype == torch.int64 and predictions.shape == (2, 100)
    accuracy = (predictions == test_y).float().mean(dim=1)
    assert (accuracy >= 0.9).all(), accuracy


def test_progress_reaches_the_total():
    x, y = blobs()  # 18 images, batch 5 -> 4 steps per epoch
    for engine in ("sequential", "batched"):
        calls = []
        train_evaluators(
            x, y, protocol=tiny_protocol(epochs=3), seeds=[1, 2, 3], num_classes=3, engine=engine,
            progress=lambda done, total: calls.append((done, total)),
        )
        assert calls[-1] == (3 * 3 * 4, 3 * 3 * 4)
        assert all(b[0] >= a[0] for a, b in zip(calls, calls[1:]))
        assert len(calls) >= 3


# ---- precision ---------------------------------------------------------------------------------


def _cpu_flags() -> set[str]:
    try:
        text = open("/proc/cpuinfo").read()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":")[1].split()}


def test_precision_resolution():
    assert resolve_precision("fp32", "cpu") == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "fp32"
    flags = _cpu_flags()
    if flags:  # Linux: the kernel's CPU flags are an independent check of the hardware test
        native = bool({"amx_bf16", "avx512_bf16"} & flags)
        assert resolve_precision("auto", "cpu") == ("bf16" if native else "fp32")
    with pytest.raises(ConfigError, match="unknown precision"):
        resolve_precision("fp16", "cpu")


@pytest.mark.parametrize("engine", ["sequential", "batched"])
def test_bf16_training_is_repeatable_and_close_to_fp32(engine):
    x, y = blobs()
    test_x, _ = blobs(seed=3, noise=1.0)
    protocol = tiny_protocol(aug="dsa", epochs=3)

    def logits(precision):
        return train_evaluators(
            x, y, protocol=protocol, seeds=[1, 2], num_classes=3, engine=engine, precision=precision
        ).logits(test_x)

    bf16, fp32 = logits("bf16"), logits("fp32")
    assert bf16.dtype == torch.float32
    assert torch.equal(bf16, logits("bf16"))  # same seeds, same machine: same numbers
    assert not torch.equal(bf16, fp32)  # the arithmetic really is different
    torch.testing.assert_close(bf16, fp32, rtol=0.1, atol=0.1)  # ... but only by rounding


# ---- torch.compile ---------------------------------------------------------------------------


def test_compile_plan():
    assert plan_compile("off", "cpu", 10**6, 10**6) == CompilePlan(False, False)
    assert plan_compile("on", "cpu", 1, 1) == CompilePlan(True, True)
    assert plan_compile("auto", "cuda", 10**6, 10**6) == CompilePlan(False, False)
    import shutil

    if any(shutil.which(name) for name in ("g++", "c++", "clang++")):
        assert plan_compile("auto", "cpu", COMPILE_MIN_TRAIN_STEPS, 0) == CompilePlan(True, False)
        assert plan_compile("auto", "cpu", COMPILE_MIN_TRAIN_STEPS - 1, COMPILE_MIN_PREDICTIONS) == CompilePlan(False, True)
    with pytest.raises(ConfigError, match="unknown compile setting"):
        plan_compile("yes", "cpu", 1, 1)


def test_padding_the_last_test_batch_changes_no_prediction():
    model = create_model(TINY, 3, 3, (8, 8), seed=0).eval()
    x, _ = blobs(n_per_class=7)  # 21 images: batches of 8, 8 and 5
    plain = predict_in_batches(model, x, torch.device("cpu"), "fp32", 8)
    calls = []

    def forward(xb):
        calls.append(xb.shape[0])
        return model(xb)

    padded = predict_in_batches(forward, x, torch.device("cpu"), "fp32", 8, pad_last=True)
    assert calls == [8, 8, 8]
    torch.testing.assert_close(padded, plain)


def test_compiled_evaluators_are_repeatable_and_match_eager():
    """One compile (tens of seconds on 2 cores, less from inductor's cache): training and prediction."""
    x, y = blobs()
    test_x, _ = blobs(seed=3, noise=1.0)
    protocol = tiny_protocol(aug="dsa", epochs=3)

    def logits(setting):
        return train_evaluators(
            x, y, protocol=protocol, seeds=[1, 2], num_classes=3, engine="sequential", precision="fp32",
            compile=setting,
        ).logits(test_x, batch_size=8)

    compiled = logits("on")
    assert torch.equal(compiled, logits("on"))
    torch.testing.assert_close(compiled, logits("off"), rtol=1e-3, atol=1e-4)


# ---- engine choice -----------------------------------------------------------------------------


def test_engine_choice():
    assert choose_engine("ConvNet", 5, "auto", "cuda") == "batched"
    assert choose_engine("ConvNet", 1, "auto", "cuda") == "sequential"
    assert choose_engine("ConvNetBN", 5, "auto", "cuda") == "sequential"
    assert choose_engine("ConvNet", 5, "auto", "cpu") == "sequential"
    assert choose_engine("ConvNet", 5, "batched", "cpu") == "batched"
    assert choose_engine("ConvNetBN", 5, "sequential") == "sequential"
    with pytest.raises(ConfigError, match="BatchNorm"):
        choose_engine("ConvNetBN", 5, "batched")
    with pytest.raises(ConfigError, match="unknown engine"):
        choose_engine("ConvNet", 5, "fast")


def test_batchnorm_model_trains_sequentially_under_auto():
    x, y = blobs()
    protocol = tiny_protocol(model="ConvNetBN", epochs=1, batch_size=9)
    ensemble = train_evaluators(x, y, protocol=protocol, seeds=[1, 2], num_classes=3, engine="auto", device="cpu")
    assert isinstance(ensemble, SequentialEnsemble) and len(ensemble) == 2
    with pytest.raises(ConfigError, match="BatchNorm"):
        train_evaluators(x, y, protocol=protocol, seeds=[1, 2], num_classes=3, engine="batched")


# ---- protocols -------------------------------------------------------------------------------


def test_presets():
    assert available_protocols() == ["dc", "dsa", "dm", "mtt", "quick", "ci"]
    dc = get_protocol("dc")
    assert (dc.model, dc.epochs, dc.aug, dc.lr, dc.momentum, dc.weight_decay, dc.batch_size) == (
        "ConvNet", 300, "none", 0.01, 0.9, 5e-4, 256
    )
    for name in ("dsa", "dm"):
        p = get_protocol(name)
        assert (p.epochs, p.aug, p.dsa_strategy) == (1000, "dsa", "color_crop_cutout_flip_scale_rotate")
    assert get_protocol("mtt", lr=0.02).lr == 0.02 and get_protocol("mtt", lr=0.02).epochs == 1000
    quick = get_protocol("quick")
    assert (quick.model, quick.epochs, quick.aug) == ("ConvNet", 50, "none")
    ci = get_protocol("ci")
    assert (ci.model, ci.epochs, ci.aug, ci.dsa_strategy, ci.lr) == (
        "ConvNet", 300, "dsa", "color_crop_cutout_flip_scale_rotate", 0.01
    )


def test_mtt_without_lr_says_what_to_do():
    with pytest.raises(ConfigError) as info:
        get_protocol("mtt")
    assert str(info.value) == MTT_NEEDS_LR
    x, y = blobs()
    with pytest.raises(ConfigError, match="learned lr"):
        train_and_predict(x, y, x, protocol="mtt", seeds=[0], num_classes=3)


def test_lr_schedule_boundaries():
    p = get_protocol("dc", epochs=300)
    assert p.lr_at(0) == p.lr_at(149) == 0.01
    assert p.lr_at(150) == pytest.approx(0.001) and p.lr_at(299) == pytest.approx(0.001)
    odd = get_protocol("dc", epochs=5)
    assert [odd.lr_at(e) for e in range(5)] == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001])
    assert get_protocol("dc", epochs=1).lr_at(0) == 0.01


def test_protocol_round_trips_through_its_dict_and_validates():
    p = get_protocol("dsa", model="ConvNetW32", epochs=7, lr=None)
    assert p.lr == 0.01  # None overrides are ignored
    assert Protocol(**p.to_dict()) == p
    with pytest.raises(ConfigError, match="unknown protocol 'fast'"):
        get_protocol("fast")
    with pytest.raises(ConfigError, match="unknown protocol setting 'epoch'"):
        get_protocol("dc", epoch=3)
    with pytest.raises(ConfigError, match="epochs must be a positive integer"):
        get_protocol("dc", epochs=0)
    with pytest.raises(ConfigError, match="not registered"):
        get_protocol("dc", model="ConvNet9")
    with pytest.raises(ConfigError, match="unknown augmentation"):
        get_protocol("dsa", dsa_strategy="crop_blur")


# ---- input errors ----------------------------------------------------------------------------


def test_input_errors_are_one_line_input_errors():
    x, y = blobs()
    protocol = tiny_protocol(epochs=1)
    cases = [
        (x, y, x[:, :, :4, :4], InputError, "test images"),
        (x, y + 3, x, InputError, "labels must lie in"),
        (x, y[:-1], x, InputError, "train_y must be"),
        (x[0], y, x, InputError, "train_x must be"),
        (x[:0], y[:0], x, InputError, "empty"),
    ]
    for train_x, train_y, test_x, error, text in cases:
        with pytest.raises(error, match=text) as info:
            train_and_predict(train_x, train_y, test_x, protocol=protocol, seeds=[0], num_classes=3)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match="seed"):
        train_and_predict(x, y, x, protocol=protocol, seeds=[], num_classes=3)
