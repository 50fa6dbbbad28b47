"""Evaluator model zoo: shapes, DC architecture facts, deterministic init, vmap-ability."""

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from ddaudit.errors import ConfigError
from ddaudit.evaluate import available_models, create_model, is_batchable, register_model

DC_NAMES = [
    "MLP", "ConvNet", "LeNet", "AlexNet", "AlexNetBN", "VGG11", "VGG11BN", "ResNet18", "ResNet18BN_AP",
    "ResNet18BN", "ConvNetD1", "ConvNetD2", "ConvNetD3", "ConvNetD4", "ConvNetW32", "ConvNetW64",
    "ConvNetW128", "ConvNetW256", "ConvNetNN", "ConvNetBN", "ConvNetLN", "ConvNetIN", "ConvNetGN",
    "ConvNetNP", "ConvNetMP", "ConvNetAP",
]
LIGHT = ["MLP", "ConvNet", "ConvNetD1", "ConvNetW32", "ConvNetBN", "ConvNetLN", "ConvNetGN", "ConvNetMP", "LeNet"]
HEAVY = ["AlexNet", "VGG11", "ResNet18", "ResNet18BN_AP"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_every_dc_name_is_registered():
    assert set(DC_NAMES) <= set(available_models())


@pytest.mark.parametrize("name", available_models())
def test_forward_and_embed_shapes_on_cifar_sized_input(name):
    model = create_model(name, 3, 7, (32, 32), seed=0).eval()
    x = torch.randn(2, 3, 32, 32)
    logits, features = model(x), model.embed(x)
    assert logits.shape == (2, 7)
    assert features.dim() == 2 and features.shape[0] == 2
    # embed is the penultimate layer: the classifier maps it to the logits.
    torch.testing.assert_close(model.classifier(features), logits)


@pytest.mark.parametrize("name", LIGHT + HEAVY)
@pytest.mark.parametrize("channel,size", [(1, 28), (3, 64)])
def test_mnist_and_tiny_imagenet_sizes(name, channel, size):
    model = create_model(name, channel, 10, (size, size), seed=0).eval()
    assert model(torch.randn(2, channel, size, size)).shape == (2, 10)


def _count(model, kind):
    return sum(isinstance(m, kind) for m in model.modules())


def test_convnet_matches_dc_architecture():
    model = create_model("ConvNet", 3, 10, (32, 32), seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert [c.out_channels for c in convs] == [128, 128, 128]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) for c in convs)
    # instance norm as DC writes it: GroupNorm(C, C) with affine parameters
    assert all(n.num_groups == n.num_channels == 128 and n.affine for n in norms) and len(norms) == 3
    assert _count(model, nn.AvgPool2d) == 3 and _count(model, nn.ReLU) == 3
    # conv weights+biases, norm scales+shifts, linear on 128 x 4 x 4 features
    expected = (3 * 128 * 9 + 128) + 2 * (128 * 128 * 9 + 128) + 3 * 2 * 128 + (128 * 4 * 4 * 10 + 10)
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.embed(torch.randn(1, 3, 32, 32)).shape == (1, 2048)


def test_convnet_on_mnist_is_padded_like_dc():
    model = create_model("ConvNet", 1, 10, (28, 28), seed=0)
    assert model.embed(torch.randn(1, 1, 28, 28)).shape == (1, 2048)


@pytest.mark.parametrize(
    "name,width,depth",
    [("ConvNetW32", 32, 3), ("ConvNetW256", 256, 3), ("ConvNetD1", 128, 1), ("ConvNetD4", 128, 4), ("ConvNetW32D2", 32, 2)],
)
def test_width_and_depth_variants(name, width, depth):
    model = create_model(name, 3, 10, (32, 32), seed=0)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [width] * depth
    side = 32 // 2**depth
    assert model.embed(torch.randn(1, 3, 32, 32)).shape == (1, width * side * side)


def test_norm_and_pooling_variants():
    assert _count(create_model("ConvNetBN", 3, 10), nn.BatchNorm2d) == 3
    assert _count(create_model("ConvNetLN", 3, 10), nn.LayerNorm) == 3
    assert _count(create_model("ConvNetNN", 3, 10), nn.GroupNorm) == 0
    groupnorms = [m for m in create_model("ConvNetGN", 3, 10).modules() if isinstance(m, nn.GroupNorm)]
    assert [m.num_groups for m in groupnorms] == [4, 4, 4]
    assert _count(create_model("ConvNetMP", 3, 10), nn.MaxPool2d) == 3
    no_pool = create_model("ConvNetNP", 3, 10)
    assert _count(no_pool, nn.AvgPool2d) + _count(no_pool, nn.MaxPool2d) == 0
    assert _count(create_model("ResNet18BN", 3, 10), nn.BatchNorm2d) > 0
    assert _count(create_model("ResNet18", 3, 10), nn.BatchNorm2d) == 0


def test_batchnorm_models_are_not_batchable():
    bn = [name for name in available_models() if "BN" in name]
    assert set(bn) >= {"ConvNetBN", "AlexNetBN", "VGG11BN", "ResNet18BN", "ResNet18BN_AP"}
    for name in available_models():
        has_bn = _count(create_model(name, 3, 10, (32, 32)), nn.BatchNorm2d) > 0
        assert is_batchable(name) == (not has_bn), name


@pytest.mark.parametrize("name", [n for n in LIGHT + ["AlexNet", "ConvNetNP"] if is_batchable(n)])
def test_batchable_models_run_under_vmap(name):
    models = [create_model(name, 3, 5, (16, 16), seed=s).eval() for s in (1, 2)]
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")
    x = torch.randn(2, 3, 3, 16, 16)
    stacked = vmap(lambda p, b, xi: functional_call(base, (p, b), (xi,)))(params, buffers, x)
    with torch.no_grad():
        for i, model in enumerate(models):
            torch.testing.assert_close(stacked[i], model(x[i]), rtol=1e-4, atol=1e-5)


def test_seeded_init_is_deterministic_and_leaves_global_rng_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = create_model("ConvNetW32", 3, 10, seed=5)
    assert torch.equal(torch.get_rng_state(), state)
    b = create_model("ConvNetW32", 3, 10, seed=5)
    c = create_model("ConvNetW32", 3, 10, seed=6)
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()) if pa.dim() > 1)


def test_unseeded_init_follows_global_rng():
    torch.manual_seed(0)
    a = create_model("MLP", 1, 3, (8, 8))
    torch.manual_seed(0)
    b = create_model("MLP", 1, 3, (8, 8))
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))


def test_unknown_model_lists_choices():
    with pytest.raises(ConfigError, match="unknown model 'ConvNett'.*ConvNet, ") as info:
        create_model("ConvNett", 3, 10)
    assert "\n" not in str(info.value)
    with pytest.raises(ConfigError):
        is_batchable("nope")


def test_too_small_images_are_a_config_error():
    with pytest.raises(ConfigError, match="needs larger images"):
        create_model("ConvNetD4", 3, 10, (8, 8))
    with pytest.raises(ConfigError, match="needs larger images"):
        create_model("VGG11", 3, 10, (16, 16))


def test_int_im_size_and_bad_sizes():
    assert create_model("MLP", 3, 4, 16)(torch.randn(1, 3, 16, 16)).shape == (1, 4)
    with pytest.raises(ConfigError):
        create_model("MLP", 0, 4, 16)


def test_register_model_rejects_duplicates():
    with pytest.raises(ValueError, match="already registered"):
        register_model("ConvNet")(lambda channel, num_classes, im_size: nn.Identity())
