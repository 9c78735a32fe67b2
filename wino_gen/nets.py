"""Network shapes for the planner (pure Python): the layers of ResNet-18 (ImageNet 224x224) and
ResNet-20 (Fashion-MNIST 28x28, ``train.models.CifarResNet`` with 1x1 shortcuts) as
``train/models.py`` builds them, and the real layers of a model dir. BatchNorm and ReLU are
folded into the convolutions as in an export, so only ops with data movement remain."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

INPUT = "input"
OPS = ("conv", "add", "maxpool", "avgpool", "linear")


@dataclass(frozen=True)
class Layer:
    """One op: ``conv`` (``winograd`` when the model stores it as a Winograd layer, i.e. 3x3
    stride 1), ``add``, ``maxpool``, ``avgpool`` or ``linear`` (a 1x1 conv on a 1x1 image)."""

    name: str
    op: str
    inputs: tuple[str, ...]
    in_shape: tuple[int, int, int]     # C, H, W
    out_shape: tuple[int, int, int]    # K, Ho, Wo
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    winograd: bool = False

    @property
    def has_weights(self) -> bool:
        return self.op in ("conv", "linear")


def _out(h: int, k: int, s: int, p: int) -> int:
    return (h + 2 * p - k) // s + 1


class _Builder:
    """Appends layers, tracking the current tensor's shape."""

    def __init__(self, shape: tuple[int, int, int]):
        self.layers: list[Layer] = []
        self.shape = {INPUT: shape}

    def conv(self, name, src, K, k, s, p):
        C, H, W = self.shape[src]
        out = (K, _out(H, k, s, p), _out(W, k, s, p))
        self._add(Layer(name, "conv", (src,), (C, H, W), out, k, s, p, winograd=k == 3 and s == 1))
        return name

    def pool(self, name, op, src, k, s, p=0):
        C, H, W = self.shape[src]
        self._add(Layer(name, op, (src,), (C, H, W), (C, _out(H, k, s, p), _out(W, k, s, p)), k, s, p))
        return name

    def add(self, name, a, b):
        self._add(Layer(name, "add", (a, b), self.shape[a], self.shape[a]))
        return name

    def linear(self, name, src, K):
        self._add(Layer(name, "linear", (src,), (math.prod(self.shape[src]), 1, 1), (K, 1, 1)))
        return name

    def _add(self, layer: Layer) -> None:
        self.layers.append(layer)
        self.shape[layer.name] = layer.out_shape

    def block(self, prefix, src, planes, stride):
        a = self.conv(f"{prefix}.conv1", src, planes, 3, stride, 1)
        b = self.conv(f"{prefix}.conv2", a, planes, 3, 1, 1)
        skip = src
        if stride != 1 or self.shape[src][0] != planes:
            skip = self.conv(f"{prefix}.downsample", src, planes, 1, stride, 0)
        return self.add(f"{prefix}.add", b, skip)

    def stage(self, name, src, planes, blocks, stride):
        for i in range(blocks):
            src = self.block(f"{name}.{i}", src, planes, stride if i == 0 else 1)
        return src


def resnet18(size: int = 224, classes: int = 1000) -> tuple[Layer, ...]:
    """torchvision's ResNet-18: 7x7/2 stem, 3x3/2 maxpool, four stages of two blocks, fc."""
    b = _Builder((3, size, size))
    x = b.pool("maxpool", "maxpool", b.conv("conv1", INPUT, 64, 7, 2, 3), 3, 2, 1)
    for i, planes in enumerate((64, 128, 256, 512)):
        x = b.stage(f"layer{i + 1}", x, planes, 2, 1 if i == 0 else 2)
    x = b.pool("avgpool", "avgpool", x, b.shape[x][1], b.shape[x][1])
    b.linear("fc", x, classes)
    return tuple(b.layers)


def resnet20(size: int = 28, channels: int = 1, classes: int = 10) -> tuple[Layer, ...]:
    """CifarResNet(n=3) on Fashion-MNIST: 3x3 stem to 16 channels, stages of 16/32/64 with
    three blocks each and 1x1/2 shortcuts, global average pool, fc."""
    b = _Builder((channels, size, size))
    x = b.conv("conv1", INPUT, 16, 3, 1, 1)
    for i, planes in enumerate((16, 32, 64)):
        x = b.stage(f"layer{i + 1}", x, planes, 3, 1 if i == 0 else 2)
    x = b.pool("avgpool", "avgpool", x, b.shape[x][1], b.shape[x][1])
    b.linear("fc", x, classes)
    return tuple(b.layers)


def _from_format(lay) -> Layer:
    """A model-dir layer (``wino_gen.format.Layer``) as a planner layer."""
    s, ins = lay.spec, tuple(lay.inputs)
    out = tuple(lay.out_shape) if len(lay.out_shape) == 3 else (lay.out_shape[0], 1, 1)
    if lay.op == "linear":
        return Layer(lay.name, "linear", ins, (math.prod(lay.in_shape), 1, 1), out)
    shape = tuple(lay.in_shape)
    if lay.op == "winograd_conv3x3":
        return Layer(lay.name, "conv", ins, shape, out, 3, 1, s["padding"], winograd=True)
    if lay.op == "direct_conv":
        kh, kw = lay.arrays["W"].shape[2:]
        if kh != kw:
            raise UsageError(f"{lay.name}: the planner takes square kernels, got {kh}x{kw}")
        return Layer(lay.name, "conv", ins, shape, out, kh, s["stride"], s["padding"])
    if lay.op == "add":
        return Layer(lay.name, "add", ins, shape, out)
    return Layer(lay.name, lay.op, ins, shape, out, s["kernel"], s["stride"], s.get("padding", 0))


def from_model_dir(path: str | Path) -> tuple[Layer, ...]:
    """The real layers of a model dir (``wino_gen.format.load_model`` validates it)."""
    from . import format as fmt
    return tuple(_from_format(lay) for lay in fmt.load_model(path).layers)


NETWORKS = {"resnet18": resnet18, "resnet20": resnet20}


def network(name: str) -> tuple[Layer, ...]:
    """``resnet18``, ``resnet20`` or a model dir's path."""
    if name in NETWORKS:
        return NETWORKS[name]()
    if Path(name).is_dir():
        return from_model_dir(name)
    raise UsageError(f"--model: {name!r} is neither a model dir nor one of {', '.join(NETWORKS)}")
