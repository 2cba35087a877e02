"""Reference models for 28×28 MNIST digits, PyTorch side.

The Keras twins in ``compresslib/keras/models.py`` have the same layers, the
same shapes and the same parameter counts (a test checks).

Example:
    >>> from compresslib.torch.models import build
    >>> sum(p.numel() for p in build("lenet300_100").parameters())
    266610
"""
from __future__ import annotations

import torch
from torch import nn

from compresslib.io import register_class

MODEL_NAMES = ("lenet300_100", "lenet5", "resnet8", "mlp_wide", "lenet5_caffe")


def lenet300_100(num_classes: int = 10) -> nn.Module:
    """LeNet-300-100 (LeCun et al. 1998): 784 → 300 → 100 → 10, ReLU."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 300), nn.ReLU(),
        nn.Linear(300, 100), nn.ReLU(),
        nn.Linear(100, num_classes),
    )


def mlp_wide(num_classes: int = 10) -> nn.Module:
    """A Dense-heavy MLP, 784 → 1024 → 1024 → 10: where dynamic int8 pays off."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(784, 1024), nn.ReLU(),
        nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, num_classes),
    )


def lenet5(num_classes: int = 10) -> nn.Module:
    """LeNet-5 for 28×28 inputs (conv 5×5 padded, ReLU and max-pooling)."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(),
        nn.Linear(84, num_classes),
    )


def lenet5_caffe(num_classes: int = 10) -> nn.Module:
    """Caffe's LeNet-5, the model of Han et al. (2016): conv 20@5×5, pool, conv 50@5×5, pool, fc 500, ReLU, fc 10.

    431,080 parameters. As in Caffe's ``lenet_train_test.prototxt``, the convolutions are
    not padded and have no activation; the only ReLU follows the 500-unit layer.
    """
    return nn.Sequential(
        nn.Conv2d(1, 20, 5), nn.MaxPool2d(2),
        nn.Conv2d(20, 50, 5), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(50 * 4 * 4, 500), nn.ReLU(),
        nn.Linear(500, num_classes),
    )


@register_class
class BasicBlock(nn.Module):
    """ResNet basic block: conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


@register_class
class ResNet8(nn.Module):
    """A small ResNet for 28×28 digits: stem, three basic blocks (16, 32, 64 channels), pool, linear."""

    def __init__(self, num_classes: int = 10, widths: tuple[int, int, int] = (16, 32, 64)) -> None:
        super().__init__()
        w1, w2, w3 = widths
        self.stem = nn.Sequential(nn.Conv2d(1, w1, 3, padding=1, bias=False), nn.BatchNorm2d(w1), nn.ReLU())
        self.layer1 = BasicBlock(w1, w1)
        self.layer2 = BasicBlock(w1, w2, stride=2)
        self.layer3 = BasicBlock(w2, w3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


def resnet8(num_classes: int = 10) -> nn.Module:
    """The small ResNet (basic blocks with BatchNorm) used throughout the book."""
    return ResNet8(num_classes)


_BUILDERS = {"lenet300_100": lenet300_100, "lenet5": lenet5, "resnet8": resnet8, "mlp_wide": mlp_wide,
             "lenet5_caffe": lenet5_caffe}


def build(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised reference model by ``name`` (one of ``MODEL_NAMES``)."""
    if name not in _BUILDERS:
        raise ValueError(f"name must be one of {MODEL_NAMES}, got {name!r}")
    return _BUILDERS[name](num_classes)
