"""Framework-free description of the residual model families (both ``models.py`` build from it).

Two families, each member named by a short string that both frameworks' ``build``
accept and that ``compresslib.transfer`` reads back:

* **ResNet** for 28×28 inputs (He et al., 2016, the CIFAR layout): a 3×3 stem, three
  stages at full, 1/2 and 1/4 resolution, global average pooling, one linear layer.
  ``block="basic"`` stacks two 3×3 convs per block (depth ``6n + 2``: 8, 14, 20, 32, 44, 56);
  ``block="bottleneck"`` a 1×1 → 3×3 → 1×1 chain with 4× wider outputs (depth
  ``9n + 2``: 11, 20, 29). ``plain=True`` is the same network without any shortcut.
  Names: ``resnet20_w16``, ``resnet32_w16_plain``, ``resnet20_w16_bottleneck``,
  ``resnet8_w64_56px``, ``resnet14_w8.16.32`` (widths that do not double).
* **Inverted residual** (MobileNetV2, Sandler et al., 2018): 1×1 expand, depthwise 3×3,
  1×1 linear projection, shortcut when shapes match; channels scaled by a width
  multiplier. Names: ``invres_x1.0``, ``invres_x0.5``.

The reference ``resnet8`` of the zoo is not a family member (its layer names are older);
``resnet8_w16`` is the family's equal-sized network.

Example:
    >>> s = parse("resnet20_w16_plain")
    >>> s.depth, s.widths, s.block, s.plain, s.blocks_per_stage
    (20, (16, 32, 64), 'basic', True, 3)
    >>> resnet_spec(depth=11, widths=(8, 16, 32), block="bottleneck").name
    'resnet11_w8_bottleneck'
    >>> [b.out_channels for b in parse("invres_x0.5").blocks()][:3]
    [8, 16, 16]
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

BLOCKS = ("basic", "bottleneck")
BOTTLENECK_EXPANSION = 4
# (expansion t, output channels c, repeats n, stride of the first repeat s) for 28×28 digits:
# MobileNetV2's table shortened to three resolutions (28, 14, 7), as the ResNet family.
INVRES_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 1))
INVRES_STEM = 16
INVRES_HEAD = 256


def _check_int(value, argument: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{argument} must be an integer >= {minimum}, got {value!r}")
    return value


def make_divisible(value: float, divisor: int = 8) -> int:
    """MobileNetV2's channel rounding: the nearest multiple of ``divisor``, never below 90 % of ``value``.

    Example:
        >>> make_divisible(12), make_divisible(16 * 0.75), make_divisible(24 * 1.4)
        (16, 16, 32)
    """
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return out + divisor if out < 0.9 * value else out


@dataclass(frozen=True)
class ResNetSpec:
    """One member of the ResNet family (see :func:`resnet_spec`)."""

    depth: int
    widths: tuple[int, int, int]
    block: str = "basic"
    plain: bool = False
    input_size: int = 28
    family: str = "resnet"

    @property
    def blocks_per_stage(self) -> int:
        per_block = 2 if self.block == "basic" else 3
        return (self.depth - 2) // (3 * per_block)

    @property
    def stage_outputs(self) -> tuple[int, int, int]:
        """Output channels of each stage (4× the inner width for bottleneck blocks)."""
        k = 1 if self.block == "basic" else BOTTLENECK_EXPANSION
        return tuple(k * w for w in self.widths)  # type: ignore[return-value]

    @property
    def name(self) -> str:
        w1, w2, w3 = self.widths
        widths = f"{w1}" if (w2, w3) == (2 * w1, 4 * w1) else f"{w1}.{w2}.{w3}"
        return (f"resnet{self.depth}_w{widths}" + ("_bottleneck" if self.block == "bottleneck" else "")
                + ("_plain" if self.plain else "") + (f"_{self.input_size}px" if self.input_size != 28 else ""))


@dataclass(frozen=True)
class InvertedBlock:
    """One inverted-residual block: ``in → in·t (1×1) → depthwise 3×3 (stride) → out (1×1)``."""

    in_channels: int
    out_channels: int
    expansion: int
    stride: int

    @property
    def hidden(self) -> int:
        return self.in_channels * self.expansion

    @property
    def residual(self) -> bool:
        """A shortcut only where the block keeps the shape (MobileNetV2's rule)."""
        return self.stride == 1 and self.in_channels == self.out_channels


@dataclass(frozen=True)
class InvertedResidualSpec:
    """One member of the inverted-residual family (see :func:`inverted_residual_spec`)."""

    width_mult: float = 1.0
    input_size: int = 28
    family: str = "invres"

    @property
    def stem(self) -> int:
        return make_divisible(INVRES_STEM * self.width_mult)

    @property
    def head(self) -> int:
        """Channels of the last 1×1 conv (MobileNetV2 keeps it at full width below multiplier 1)."""
        return make_divisible(INVRES_HEAD * max(1.0, self.width_mult))

    def blocks(self) -> list[InvertedBlock]:
        out, c_in = [], self.stem
        for t, c, n, s in INVRES_SETTINGS:
            c_out = make_divisible(c * self.width_mult)
            for i in range(n):
                out.append(InvertedBlock(c_in, c_out, t, s if i == 0 else 1))
                c_in = c_out
        return out

    @property
    def name(self) -> str:
        return f"invres_x{self.width_mult:g}" + ("" if "." in f"{self.width_mult:g}" else ".0") \
            + (f"_{self.input_size}px" if self.input_size != 28 else "")


Spec = Union[ResNetSpec, InvertedResidualSpec]


def _check_input_size(input_size) -> int:
    _check_int(input_size, "input_size", 8)
    return input_size


def resnet_spec(depth: int = 20, widths: Union[int, tuple] = (16, 32, 64), block: str = "basic",
                plain: bool = False, input_size: int = 28) -> ResNetSpec:
    """Validate the arguments of a ResNet family member (``ValueError`` naming the argument).

    ``widths``: one int ``w`` (stages ``w, 2w, 4w``) or three ints; for ``block="bottleneck"``
    they are the inner widths, and each stage outputs four times as many channels.

    Example:
        >>> resnet_spec(depth=10)
        Traceback (most recent call last):
        ...
        ValueError: depth must be 6n + 2 for basic blocks (8, 14, 20, 26, 32, ...), got 10
    """
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {BLOCKS}, got {block!r}")
    _check_int(depth, "depth", 2)
    per_block = 2 if block == "basic" else 3
    if (depth - 2) % (3 * per_block) or depth < 2 + 3 * per_block:
        examples = ", ".join(str(2 + 3 * per_block * n) for n in range(1, 6))
        raise ValueError(f"depth must be {3 * per_block}n + 2 for {block} blocks ({examples}, ...), got {depth}")
    if isinstance(widths, int) and not isinstance(widths, bool):
        widths = (widths, 2 * widths, 4 * widths)
    if not isinstance(widths, (tuple, list)) or len(widths) != 3:
        raise ValueError(f"widths must be an int or three ints (one per stage), got {widths!r}")
    widths = tuple(_check_int(w, "widths", 1) for w in widths)
    if not isinstance(plain, bool):
        raise ValueError(f"plain must be True or False, got {plain!r}")
    return ResNetSpec(depth, widths, block, plain, _check_input_size(input_size))  # type: ignore[arg-type]


def inverted_residual_spec(width_mult: float = 1.0, input_size: int = 28) -> InvertedResidualSpec:
    """Validate the arguments of an inverted-residual family member.

    Example:
        >>> inverted_residual_spec(0.5).name, inverted_residual_spec(1).name
        ('invres_x0.5', 'invres_x1.0')
    """
    if isinstance(width_mult, bool) or not isinstance(width_mult, (int, float)) or not 0.1 <= width_mult <= 4:
        raise ValueError(f"width_mult must be a number in [0.1, 4], got {width_mult!r}")
    return InvertedResidualSpec(float(width_mult), _check_input_size(input_size))


_RESNET = re.compile(r"^resnet(\d+)_w(\d+)(?:\.(\d+)\.(\d+))?(_bottleneck)?(_plain)?(?:_(\d+)px)?$")
_INVRES = re.compile(r"^invres_x(\d+(?:\.\d+)?)(?:_(\d+)px)?$")


def parse(name: str) -> Spec:
    """The spec of a family member from its name (``ValueError`` for anything else).

    Example:
        >>> parse("resnet8_w64_56px").input_size
        56
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    m = _RESNET.match(name)
    if m:
        depth, w1, w2, w3, bottleneck, plain, size = m.groups()
        widths = (int(w1), int(w2), int(w3)) if w2 else int(w1)
        spec: Spec = resnet_spec(int(depth), widths, "bottleneck" if bottleneck else "basic", bool(plain),
                                 int(size) if size else 28)
    else:
        m = _INVRES.match(name)
        if not m:
            raise ValueError(f"name {name!r} is not a family member: expected e.g. 'resnet20_w16', "
                             "'resnet32_w16_plain', 'resnet20_w16_bottleneck', 'resnet8_w64_56px', 'invres_x0.5'")
        spec = inverted_residual_spec(float(m.group(1)), int(m.group(2)) if m.group(2) else 28)
    if spec.name != name:  # one spelling per member: "resnet20_w16.32.64" is "resnet20_w16"
        raise ValueError(f"name {name!r} is spelled {spec.name!r}")
    return spec


def is_family_name(name: str) -> bool:
    """True when ``name`` parses as a family member."""
    try:
        parse(name)
    except (ValueError, TypeError):
        return False
    return True
