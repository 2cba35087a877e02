"""Models for 28×28 MNIST digits, PyTorch side: the reference models and the residual families.

The Keras twins in ``compresslib/keras/models.py`` have the same layers, the
same shapes and the same parameter counts (a test checks). Family members
(``resnet(...)``, ``inverted_residual(...)``, or ``build("resnet20_w16")``; see
:mod:`compresslib.core.architectures`) also have the same layer names in both
frameworks: a Keras layer is named like the torch module's qualified name.

Example:
    >>> from compresslib.torch.models import build
    >>> sum(p.numel() for p in build("lenet300_100").parameters())
    266610
    >>> m = resnet(depth=20, widths=16)
    >>> m.arch_name, sum(p.numel() for p in m.parameters())
    ('resnet20_w16', 272186)
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Union

import torch
from torch import nn

from compresslib.core import architectures as arch
from compresslib.core.gpt import CHAR_GPT
from compresslib.torch.io import register as register_class

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
    """ResNet basic block: conv3×3-BN-ReLU-conv3×3-BN, plus the shortcut, then ReLU.

    ``residual=False`` drops the shortcut (and its 1×1 projection): the block of a plain network.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        self.residual = residual
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        if residual:
            self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (a model) or the block's output (a block) for an NCHW batch ``x``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x) if self.residual else out)


def _shortcut(in_channels: int, out_channels: int, stride: int) -> nn.Module:
    """Identity, or a 1×1 conv + BN projection where the shape changes (He et al.'s option B)."""
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


@register_class
class Bottleneck(nn.Module):
    """ResNet bottleneck block: 1×1 (width) → 3×3 (width, stride) → 1×1 (4·width), BN after each, shortcut, ReLU."""

    def __init__(self, in_channels: int, width: int, stride: int = 1, residual: bool = True) -> None:
        super().__init__()
        out_channels = arch.BOTTLENECK_EXPANSION * width
        self.residual = residual
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        if residual:
            self.shortcut = _shortcut(in_channels, out_channels, stride)
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (a model) or the block's output (a block) for an NCHW batch ``x``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(out + self.shortcut(x) if self.residual else out)


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
        """Logits (a model) or the block's output (a block) for an NCHW batch ``x``."""
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


def resnet8(num_classes: int = 10) -> nn.Module:
    """The small ResNet (basic blocks with BatchNorm) used throughout the book."""
    return ResNet8(num_classes)


def _conv_bn_act(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1,
                 act: type | None = nn.ReLU) -> nn.Sequential:
    """``conv`` (padding k//2, no bias), ``bn`` and, unless ``act`` is None, ``relu``: named children."""
    layers = [("conv", nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False)),
              ("bn", nn.BatchNorm2d(c_out))]
    if act is not None:
        layers.append(("relu", act()))
    return nn.Sequential(OrderedDict(layers))


@register_class
class ResNet(nn.Module):
    """The ResNet family for 28×28 digits (see :func:`resnet`): stem, three stages, pool, linear."""

    def __init__(self, spec: arch.ResNetSpec, num_classes: int = 10) -> None:
        super().__init__()
        self.arch_name = spec.name  # a plain string, so compresslib.save can store it; spec is derived
        residual = not spec.plain
        self.stem = _conv_bn_act(1, spec.widths[0], 3)
        c_in = spec.widths[0]
        for stage, (width, c_out) in enumerate(zip(spec.widths, spec.stage_outputs)):
            blocks = []
            for i in range(spec.blocks_per_stage):
                stride = 2 if stage > 0 and i == 0 else 1
                if spec.block == "basic":
                    blocks.append(BasicBlock(c_in, width, stride, residual=residual))
                else:
                    blocks.append(Bottleneck(c_in, width, stride, residual=residual))
                c_in = c_out
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(c_in, num_classes)

    @property
    def spec(self) -> arch.ResNetSpec:
        return arch.parse(self.arch_name)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (a model) or the block's output (a block) for an NCHW batch ``x``."""
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.flatten(self.pool(x)))


@register_class
class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1×1 expand (skipped when t = 1), depthwise 3×3, 1×1 linear projection, shortcut."""

    def __init__(self, block: arch.InvertedBlock) -> None:
        super().__init__()
        self.residual = block.residual
        if block.expansion != 1:
            self.expand = _conv_bn_act(block.in_channels, block.hidden, 1, act=nn.ReLU6)
        self.depthwise = _conv_bn_act(block.hidden, block.hidden, 3, block.stride, groups=block.hidden, act=nn.ReLU6)
        self.project = _conv_bn_act(block.hidden, block.out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (a model) or the block's output (a block) for an NCHW batch ``x``."""
        out = self.expand(x) if hasattr(self, "expand") else x
        out = self.project(self.depthwise(out))
        return out + x if self.residual else out


@register_class
class InvertedResidualNet(nn.Module):
    """The inverted-residual family (see :func:`inverted_residual`): stem, blocks, 1×1 head, pool, linear."""

    def __init__(self, spec: arch.InvertedResidualSpec, num_classes: int = 10) -> None:
        super().__init__()
        self.arch_name = spec.name  # a plain string, so compresslib.save can store it; spec is derived
        self.stem = _conv_bn_act(1, spec.stem, 3, act=nn.ReLU6)
        blocks = spec.blocks()
        self.blocks = nn.Sequential(*[InvertedResidual(b) for b in blocks])
        self.head = _conv_bn_act(blocks[-1].out_channels, spec.head, 1, act=nn.ReLU6)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(spec.head, num_classes)

    @property
    def spec(self) -> arch.InvertedResidualSpec:
        return arch.parse(self.arch_name)  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (a model) or the block's output (a block) for an NCHW batch ``x``."""
        return self.fc(self.flatten(self.pool(self.head(self.blocks(self.stem(x))))))


def resnet(depth: int = 20, widths: Union[int, tuple[int, int, int]] = 16, block: str = "basic",
           plain: bool = False, num_classes: int = 10, input_size: int = 28) -> ResNet:
    """A ResNet family member (depth ``6n+2`` basic / ``9n+2`` bottleneck; ``plain=True``: no shortcuts).

    ``input_size`` only names the member (``resnet8_w64_56px``): the network is fully
    convolutional and takes any size; the Keras twin fixes its input shape with it.

    Example:
        >>> resnet(depth=11, widths=8, block="bottleneck").layer2[0].conv3
        Conv2d(16, 64, kernel_size=(1, 1), stride=(1, 1), bias=False)
    """
    return ResNet(arch.resnet_spec(depth, widths, block, plain, input_size), num_classes)


def inverted_residual(width_mult: float = 1.0, num_classes: int = 10, input_size: int = 28) -> InvertedResidualNet:
    """An inverted-residual (MobileNetV2-style) family member with channels scaled by ``width_mult``.

    Example:
        >>> m = inverted_residual(0.5)
        >>> m.arch_name, m.blocks[1].depthwise.conv.groups
        ('invres_x0.5', 48)
    """
    return InvertedResidualNet(arch.inverted_residual_spec(width_mult, input_size), num_classes)


def from_spec(spec: arch.Spec, num_classes: int = 10) -> nn.Module:
    """A freshly initialised family member from its :mod:`~compresslib.core.architectures` spec."""
    if isinstance(spec, arch.ResNetSpec):
        return ResNet(spec, num_classes)
    if isinstance(spec, arch.InvertedResidualSpec):
        return InvertedResidualNet(spec, num_classes)
    raise TypeError(f"spec must be a ResNetSpec or InvertedResidualSpec, got {type(spec).__name__}")


_BUILDERS = {"lenet300_100": lenet300_100, "lenet5": lenet5, "resnet8": resnet8, "mlp_wide": mlp_wide,
             "lenet5_caffe": lenet5_caffe}


def build(name: str, num_classes: int = 10) -> nn.Module:
    """A freshly initialised model by ``name``: a reference model (``MODEL_NAMES``), a family member
    (``"resnet20_w16"``, ``"invres_x0.5"``, ...; see :func:`compresslib.core.architectures.parse`) or
    the language model ``"char_gpt"`` (``compresslib.torch.gpt``; ``num_classes`` is then its
    vocabulary, 80, and the default 10 stands for it)."""
    if name == CHAR_GPT.name:
        from compresslib.torch.gpt import char_gpt

        return char_gpt(CHAR_GPT.vocab if num_classes == 10 else num_classes)
    if name in _BUILDERS:
        model = _BUILDERS[name](num_classes)
        model.arch_name = name
        return model
    try:
        spec = arch.parse(name)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"name must be one of {MODEL_NAMES} or a family member: {exc}") from None
    return from_spec(spec, num_classes)
