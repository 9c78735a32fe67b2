"""Model definitions: torchvision-compatible ResNet-18 (ImageNet shapes, same module names so a
torchvision state dict loads) and a CIFAR-style ResNet-20 for 28x28 / 32x32 inputs.

Residual adds are written as ``out + identity`` and every ReLU is an ``nn.ReLU`` module, so
``torch.fx`` traces them and :mod:`train.convert` can map every op onto the integer model.
"""

from __future__ import annotations

import torch
from torch import nn

from wino_gen.errors import UsageError


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


def _downsample(inplanes: int, planes: int, stride: int) -> nn.Module | None:
    if stride == 1 and inplanes == planes:
        return None
    return nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


class ResNet(nn.Module):
    """torchvision's ``ResNet`` with ``BasicBlock`` (the ``resnet18`` layout)."""

    def __init__(self, layers=(2, 2, 2, 2), num_classes: int = 1000, in_channels: int = 3):
        super().__init__()
        self.inplanes = 64
        self.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(64, layers[0], 1)
        self.layer2 = self._make_layer(128, layers[1], 2)
        self.layer3 = self._make_layer(256, layers[2], 2)
        self.layer4 = self._make_layer(512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_classes)
        _init(self)

    def _make_layer(self, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(self.inplanes, planes, stride, _downsample(self.inplanes, planes, stride))]
        self.inplanes = planes
        layers += [BasicBlock(planes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


class CifarResNet(nn.Module):
    """He et al.'s CIFAR ResNet (6n+2 layers; n=3 is ResNet-20), 16/32/64 channels, 1x1-conv
    (option B) shortcuts so every op is integer-executable. Works for 28x28 and 32x32 inputs."""

    def __init__(self, n: int = 3, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        self.inplanes = 16
        self.conv1 = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(16, n, 1)
        self.layer2 = self._make_layer(32, n, 2)
        self.layer3 = self._make_layer(64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)
        _init(self)

    _make_layer = ResNet._make_layer

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


def _init(model: nn.Module) -> None:
    for mod in model.modules():
        if isinstance(mod, nn.Conv2d):
            nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(mod, nn.BatchNorm2d):
            nn.init.ones_(mod.weight)
            nn.init.zeros_(mod.bias)


def resnet18(num_classes: int = 1000, in_channels: int = 3) -> nn.Module:
    return ResNet((2, 2, 2, 2), num_classes, in_channels)


def resnet20(num_classes: int = 10, in_channels: int = 3) -> nn.Module:
    return CifarResNet(3, num_classes, in_channels)


MODELS = {"resnet20": resnet20, "resnet18": resnet18}


def build(name: str, num_classes: int, in_channels: int) -> nn.Module:
    if name not in MODELS:
        raise UsageError(f"--model: unknown model {name!r}; allowed: {', '.join(MODELS)}")
    return MODELS[name](num_classes=num_classes, in_channels=in_channels)
