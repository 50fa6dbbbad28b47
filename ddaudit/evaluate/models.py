"""Evaluator model zoo: the DC-family architectures behind one registry.

Adding a model is one decorated builder ``(channel, num_classes, im_size) ->
nn.Module``; :func:`create_model` is the only way in. Every model exposes
``embed(x) -> (N, D)`` (penultimate features, what distribution matching
compares) next to ``forward(x) -> (N, num_classes)``.

Names follow DatasetCondensation's ``get_network`` so that a protocol written
for that codebase means the same network here. Inputs of 28x28 get three
pixels of padding in the first convolution (as DC does for MNIST), so the
feature maps have the same sizes as for 32x32 inputs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from ddaudit.errors import ConfigError

ModelBuilder = Callable[[int, int, tuple[int, int]], nn.Module]

_MODELS: dict[str, ModelBuilder] = {}
_BATCHABLE: dict[str, bool] = {}

UNKNOWN_MODEL = "unknown model {name!r}: choose one of {choices}"
IMAGE_TOO_SMALL = "model {name} needs larger images than {size}: pick a shallower model"


def register_model(name: str, *, batchable: bool = True) -> Callable[[ModelBuilder], ModelBuilder]:
    """Register a builder under ``name``.

    ``batchable=False`` marks models that cannot be trained as one vmapped
    computation (BatchNorm keeps running statistics that vmap cannot update).
    """

    def decorate(builder: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise ValueError(f"model {name!r} is already registered")
        _MODELS[name] = builder
        _BATCHABLE[name] = batchable
        return builder

    return decorate


def available_models() -> list[str]:
    """Registered model names, in registration order."""
    return list(_MODELS)


def is_batchable(name: str) -> bool:
    """Whether the batched (vmap) engine can train ``name``."""
    _check_name(name)
    return _BATCHABLE[name]


def create_model(
    name: str,
    channel: int,
    num_classes: int,
    im_size: tuple[int, int] | int = (32, 32),
    *,
    seed: int | None = None,
) -> nn.Module:
    """Build model ``name`` for ``channel`` x ``im_size`` inputs and ``num_classes`` outputs.

    With ``seed`` the initial weights depend on the seed alone and the
    caller's global RNG is left untouched; without it the global RNG is used.
    """
    _check_name(name)
    if isinstance(im_size, int):
        im_size = (im_size, im_size)
    im_size = (int(im_size[0]), int(im_size[1]))
    if channel < 1 or num_classes < 1 or min(im_size) < 1:
        raise ConfigError(
            f"model {name} needs positive channel, num_classes and im_size, got {channel}, {num_classes}, {im_size}"
        )
    if seed is None:
        return _MODELS[name](channel, num_classes, im_size)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return _MODELS[name](channel, num_classes, im_size)


def _check_name(name: str) -> None:
    if name not in _MODELS:
        raise ConfigError(UNKNOWN_MODEL.format(name=name, choices=", ".join(_MODELS)))


def _first_padding(im_size: tuple[int, int], usual: int, extra: int) -> int:
    """DC pads 28x28 inputs in the first layer so later maps match 32x32 ones."""
    return usual + extra if im_size == (28, 28) else usual


class InputPrecisionGroupNorm(nn.GroupNorm):
    """``nn.GroupNorm`` that keeps its input's precision under autocast.

    Autocast runs ``group_norm`` in fp32, so under bf16 autocast every norm
    layer would cast its bf16 input up and its output back down, and the
    ReLU and pooling between would run in fp32. PyTorch's CPU kernel takes bf16
    inputs with fp32 parameters and accumulates its statistics in fp32, so
    here it runs on the bf16 tensor as it is. Same parameters and
    ``state_dict`` as ``nn.GroupNorm``; without autocast nothing changes.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            return super().forward(x)
        with torch.autocast(x.device.type, enabled=False):
            return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


def _norm_layer(norm: str, channels: int, shape: tuple[int, int, int]) -> nn.Module:
    if norm == "instancenorm":
        return InputPrecisionGroupNorm(channels, channels, affine=True)
    if norm == "batchnorm":
        return nn.BatchNorm2d(channels)
    if norm == "layernorm":
        return nn.LayerNorm(list(shape), elementwise_affine=True)
    if norm == "groupnorm":
        return InputPrecisionGroupNorm(4, channels, affine=True)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {norm!r}")


def _activation(act: str) -> nn.Module:
    layers = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "leakyrelu": nn.LeakyReLU, "swish": nn.SiLU}
    return layers[act]()


def _conv_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class Evaluator(nn.Module):
    """The contract every evaluator keeps: ``embed`` gives penultimate features
    (what DM matches), ``forward`` classifies them with ``self.classifier``.
    By default features are ``self.features(x)`` flattened; models override ``embed`` when not."""

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class ConvNet(Evaluator):
    """DC's ConvNet: ``depth`` x [conv3x3 -> norm -> act -> pool], then one Linear."""

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: tuple[int, int],
        *,
        width: int = 128,
        depth: int = 3,
        act: str = "relu",
        norm: str = "instancenorm",
        pooling: str = "avgpooling",
        name: str = "ConvNet",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, (h, w) = channel, im_size
        for d in range(depth):
            padding = _first_padding(im_size, 1, 2) if d == 0 else 1
            layers.append(nn.Conv2d(in_channels, width, kernel_size=3, padding=padding))
            h, w = _conv_size(h, 3, 1, padding), _conv_size(w, 3, 1, padding)
            layers.append(_norm_layer(norm, width, (width, h, w)))
            layers.append(_activation(act))
            in_channels = width
            if pooling != "none":
                layers.append(nn.AvgPool2d(2) if pooling == "avgpooling" else nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            if min(h, w) < 1:
                raise ConfigError(IMAGE_TOO_SMALL.format(name=name, size=f"{im_size[0]}x{im_size[1]}"))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)


class MLP(Evaluator):
    """Three fully connected layers, 128 hidden units, on the flattened image."""

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], *, hidden: int = 128) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channel * im_size[0] * im_size[1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
        )
        self.classifier = nn.Linear(hidden, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class LeNet(Evaluator):
    """LeNet-5 with ReLU and max pooling (28x28 inputs padded by 2, as in DC)."""

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int]) -> None:
        super().__init__()
        padding = _first_padding(im_size, 0, 2)
        self.features = nn.Sequential(
            nn.Conv2d(channel, 6, kernel_size=5, padding=padding),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        h, w = ((_conv_size(s, 5, 1, padding) // 2 - 4) // 2 for s in im_size)
        if min(h, w) < 1:
            raise ConfigError(IMAGE_TOO_SMALL.format(name="LeNet", size=f"{im_size[0]}x{im_size[1]}"))
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * h * w, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU()
        )
        self.classifier = nn.Linear(84, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class AlexNet(Evaluator):
    """DC's small-image AlexNet: five convolutions (128-192-256-192-192), three max pools."""

    def __init__(self, channel: int, num_classes: int, im_size: tuple[int, int], *, norm: str = "none") -> None:
        super().__init__()
        spec = [  # (out_channels, kernel, padding, pool_after)
            (128, 5, _first_padding(im_size, 2, 2), True),
            (192, 5, 2, True),
            (256, 3, 1, False),
            (192, 3, 1, False),
            (192, 3, 1, True),
        ]
        layers: list[nn.Module] = []
        in_channels, (h, w) = channel, im_size
        for out_channels, kernel, padding, pool in spec:
            layers.append(nn.Conv2d(in_channels, out_channels, kernel_size=kernel, padding=padding))
            h, w = _conv_size(h, kernel, 1, padding), _conv_size(w, kernel, 1, padding)
            layers.append(_norm_layer(norm, out_channels, (out_channels, h, w)))
            layers.append(nn.ReLU())
            if pool:
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
            in_channels = out_channels
        if min(h, w) < 1:
            raise ConfigError(IMAGE_TOO_SMALL.format(name="AlexNet", size=f"{im_size[0]}x{im_size[1]}"))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels * h * w, num_classes)


_VGG11_CONFIG = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


class VGG(Evaluator):
    """VGG with 3x3 convolutions and max pools, one Linear classifier (the CIFAR form DC uses)."""

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: tuple[int, int],
        *,
        config: tuple = _VGG11_CONFIG,
        norm: str = "instancenorm",
        name: str = "VGG11",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels, (h, w) = channel, im_size
        for i, item in enumerate(config):
            if item == "M":
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
                if min(h, w) < 1:
                    raise ConfigError(IMAGE_TOO_SMALL.format(name=name, size=f"{im_size[0]}x{im_size[1]}"))
                continue
            padding = _first_padding(im_size, 1, 2) if i == 0 else 1
            layers.append(nn.Conv2d(in_channels, item, kernel_size=3, padding=padding))
            h, w = _conv_size(h, 3, 1, padding), _conv_size(w, 3, 1, padding)
            layers.append(_norm_layer(norm, item, (item, h, w)))
            layers.append(nn.ReLU())
            in_channels = item
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(in_channels * h * w, num_classes)


class BasicBlock(nn.Module):
    """ResNet basic block; ``avgpool_downsample`` replaces strided convs by conv + 2x2 average pool."""

    def __init__(self, in_planes: int, planes: int, stride: int, norm: str, avgpool_downsample: bool) -> None:
        super().__init__()
        conv_stride = 1 if avgpool_downsample else stride
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=conv_stride, padding=1, bias=False)
        self.norm1 = _norm_layer(norm, planes, (planes, 0, 0))
        self.pool = nn.AvgPool2d(2) if avgpool_downsample and stride != 1 else nn.Identity()
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.norm2 = _norm_layer(norm, planes, (planes, 0, 0))
        self.relu = nn.ReLU()
        if stride != 1 or in_planes != planes:
            shortcut: list[nn.Module] = [nn.Conv2d(in_planes, planes, 1, stride=conv_stride, bias=False)]
            if avgpool_downsample and stride != 1:
                shortcut.append(nn.AvgPool2d(2))
            shortcut.append(_norm_layer(norm, planes, (planes, 0, 0)))
            self.shortcut = nn.Sequential(*shortcut)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.pool(self.relu(self.norm1(self.conv1(x))))
        out = self.norm2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class ResNet18(Evaluator):
    """CIFAR-style ResNet-18 (3x3 stem, no stem pooling), global average pool, one Linear."""

    def __init__(
        self,
        channel: int,
        num_classes: int,
        im_size: tuple[int, int],
        *,
        norm: str = "instancenorm",
        avgpool_downsample: bool = False,
        name: str = "ResNet18",
    ) -> None:
        super().__init__()
        if norm not in ("instancenorm", "batchnorm"):
            raise ValueError(f"ResNet18 supports instancenorm or batchnorm, not {norm!r}")
        padding = _first_padding(im_size, 1, 2)
        if min(im_size) + 2 * padding - 2 < 8:
            raise ConfigError(IMAGE_TOO_SMALL.format(name=name, size=f"{im_size[0]}x{im_size[1]}"))
        self.stem = nn.Sequential(
            nn.Conv2d(channel, 64, 3, stride=1, padding=padding, bias=False),
            _norm_layer(norm, 64, (64, 0, 0)),
            nn.ReLU(),
        )
        blocks: list[nn.Module] = []
        in_planes = 64
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            for block_stride in (stride, 1):
                blocks.append(BasicBlock(in_planes, planes, block_stride, norm, avgpool_downsample))
                in_planes = planes
        self.blocks = nn.Sequential(*blocks)
        self.classifier = nn.Linear(512, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.stem(x)).mean(dim=(2, 3))


def _register_convnets() -> None:
    """ConvNet and its DC name variants: one registry entry per name."""
    variants: dict[str, dict] = {"ConvNet": {}}
    for depth in range(1, 6):
        variants[f"ConvNetD{depth}"] = {"depth": depth}
    for width in (32, 64, 128, 256, 512, 1024):
        variants[f"ConvNetW{width}"] = {"width": width}
    for suffix, act in (("AS", "sigmoid"), ("AR", "relu"), ("AL", "leakyrelu"), ("ASwish", "swish")):
        variants[f"ConvNet{suffix}"] = {"act": act}
    for suffix, norm in (("NN", "none"), ("BN", "batchnorm"), ("LN", "layernorm"), ("IN", "instancenorm"), ("GN", "groupnorm")):
        variants[f"ConvNet{suffix}"] = {"norm": norm}
    for suffix, pooling in (("NP", "none"), ("MP", "maxpooling"), ("AP", "avgpooling")):
        variants[f"ConvNet{suffix}"] = {"pooling": pooling}
    for width in (32, 64, 128, 256):
        for depth in range(1, 5):
            variants[f"ConvNetW{width}D{depth}"] = {"width": width, "depth": depth}
    for name, options in variants.items():
        batchable = options.get("norm") != "batchnorm"
        register_model(name, batchable=batchable)(partial(_build_convnet, name=name, **options))


def _build_convnet(channel: int, num_classes: int, im_size: tuple[int, int], **options) -> nn.Module:
    return ConvNet(channel, num_classes, im_size, **options)


_register_convnets()


@register_model("MLP")
def _mlp(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return MLP(channel, num_classes, im_size)


@register_model("LeNet")
def _lenet(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return LeNet(channel, num_classes, im_size)


@register_model("AlexNet")
def _alexnet(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return AlexNet(channel, num_classes, im_size)


@register_model("AlexNetBN", batchable=False)
def _alexnet_bn(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return AlexNet(channel, num_classes, im_size, norm="batchnorm")


@register_model("VGG11")
def _vgg11(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return VGG(channel, num_classes, im_size, norm="instancenorm", name="VGG11")


@register_model("VGG11BN", batchable=False)
def _vgg11_bn(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return VGG(channel, num_classes, im_size, norm="batchnorm", name="VGG11BN")


@register_model("ResNet18")
def _resnet18(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return ResNet18(channel, num_classes, im_size, norm="instancenorm", name="ResNet18")


@register_model("ResNet18_AP")
def _resnet18_ap(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return ResNet18(channel, num_classes, im_size, norm="instancenorm", avgpool_downsample=True, name="ResNet18_AP")


@register_model("ResNet18BN", batchable=False)
def _resnet18_bn(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return ResNet18(channel, num_classes, im_size, norm="batchnorm", name="ResNet18BN")


@register_model("ResNet18BN_AP", batchable=False)
def _resnet18_bn_ap(channel: int, num_classes: int, im_size: tuple[int, int]) -> nn.Module:
    return ResNet18(
        channel, num_classes, im_size, norm="batchnorm", avgpool_downsample=True, name="ResNet18BN_AP"
    )
