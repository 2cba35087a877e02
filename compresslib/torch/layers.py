"""Layers compresslib puts into PyTorch models.

``WeightOnlyLinear`` / ``WeightOnlyConv2d``: ``WeightOnly(bits=4 | group_size=…)``
quantization stores packed integers and per-group scales and dequantizes on each
call (torchao's int4 kernels need a GPU here).

``PointwiseConv2d``: the 1×1 convolutions that Tucker-2 and CP decompositions
create. It *is* an ``nn.Conv2d`` (same parameters, same state_dict, same result;
every tool that checks ``isinstance(m, nn.Conv2d)`` treats it as one), but at
inference on CPU with a contiguous NCHW input it runs as one batched matrix
product, ``W (C_out×C_in) @ x (C_in×H·W)`` per image. Why: PyTorch sends
``Conv2d`` to oneDNN, which reorders an NCHW tensor into its blocked layout and
back around every convolution; for the thin 1×1 layers of a decomposed model
that reorder costs more than the arithmetic. Measured on this book's 2-core
x86 machine (1 thread, batch 32, 16→8 channels at 28×28): oneDNN 1.2 ms,
``torch.bmm`` 0.10 ms; the decomposed ResNet-8 went from 1.15× to 1.88× faster
than the original. While gradients are recorded, under ``torch.fx`` tracing, on
other devices or memory formats it falls back to ``nn.Conv2d.forward``, so
training, Torch-Pruning's dependency graph, FX tracing and CUDA see an ordinary
convolution.

Keras has no twin: TensorFlow already runs a 1×1 stride-1 ``Conv2D`` over
NHWC tensors as a matrix product.

Example:
    >>> import torch
    >>> pw = PointwiseConv2d(16, 8)
    >>> x = torch.randn(2, 16, 5, 5)
    >>> with torch.no_grad():
    ...     same = torch.allclose(pw(x), torch.nn.Conv2d.forward(pw, x), atol=1e-6)
    >>> same, isinstance(pw, torch.nn.Conv2d)
    (True, True)
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import torch
from torch import nn

from compresslib.core import quant as cq
from compresslib.torch.io import register as register_class


@register_class
class PointwiseConv2d(nn.Conv2d):
    """A 1×1, stride-1, ungrouped ``nn.Conv2d`` that runs as ``torch.bmm`` at CPU inference (NCHW)."""

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias, device=device, dtype=dtype)

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "PointwiseConv2d":
        """The same layer (weights shared) as a ``PointwiseConv2d``; ``conv`` must be 1×1, stride 1, no padding."""
        if not isinstance(conv, nn.Conv2d):
            raise TypeError(f"conv must be an nn.Conv2d, got {type(conv).__name__}")
        if (tuple(conv.kernel_size) != (1, 1) or tuple(conv.stride) != (1, 1) or conv.groups != 1
                or conv.padding not in ((0, 0), "valid") or tuple(conv.dilation) != (1, 1)):
            raise ValueError("conv must be 1×1 with stride 1, no padding, dilation 1 and groups 1, got "
                             f"kernel {conv.kernel_size}, stride {conv.stride}, padding {conv.padding}, "
                             f"groups {conv.groups}")
        new = cls.__new__(cls)
        new.__dict__ = conv.__dict__.copy()
        new._parameters = dict(conv._parameters)
        new._buffers = dict(conv._buffers)
        new._modules = dict(conv._modules)
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``W @ x`` per image via ``torch.bmm`` at CPU inference on a contiguous NCHW ``x``; else the conv."""
        if (type(x) is torch.Tensor and x.dim() == 4 and x.device.type == "cpu" and not torch.is_grad_enabled()
                and x.is_contiguous() and x.dtype == self.weight.dtype):
            n, c, h, w = x.shape
            weight = self.weight.view(self.out_channels, c).expand(n, -1, -1)
            flat = x.view(n, c, h * w)
            if self.bias is None:
                y = torch.bmm(weight, flat)
            else:
                y = torch.baddbmm(self.bias.view(1, -1, 1), weight, flat)
            return y.view(n, self.out_channels, h, w)
        return super().forward(x)


@register_class
class WeightOnlyLinear(nn.Module):
    """A Linear layer whose weight is stored as packed ``bits``-bit integers with per-group scales.

    compresslib's own (torchao's int4 kernels need a GPU here): the weight is
    dequantized on each call, so it saves memory and file size, not time.

    Example:
        >>> lin = torch.nn.Linear(8, 2)
        >>> q = WeightOnlyLinear.from_float(lin, bits=4, group_size=4)
        >>> tuple(q.packed.shape), tuple(q.scale.shape)
        ((8,), (4,))
    """

    def __init__(self, in_features: int, out_features: int, bits: int = 4, group_size: int = 0,
                 has_bias: bool = True, has_input_scale: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = int(in_features), int(out_features)
        self.bits, self.group_size, self.has_bias = int(bits), int(group_size), bool(has_bias)
        self.has_input_scale = bool(has_input_scale)
        n = self.out_features * self.in_features
        groups = n // (self.group_size or self.in_features)
        self.register_buffer("packed", torch.zeros(packed_size(n, self.bits), dtype=packed_dtype(self.bits)))
        self.register_buffer("scale", torch.ones(groups))
        # AWQ: the weight is stored as W · s (per input channel); the layer computes with (W · s) / s
        self.register_buffer("input_scale", torch.ones(self.in_features) if has_input_scale else None)
        self.bias = nn.Parameter(torch.zeros(out_features)) if has_bias else None

    @classmethod
    def from_float(cls, layer: nn.Linear, bits: int = 4, group_size: Optional[int] = None) -> "WeightOnlyLinear":
        w = layer.weight.detach().float().cpu().numpy()
        new = cls(layer.in_features, layer.out_features, bits, group_size or 0, layer.bias is not None)
        new = new.to(layer.weight.device)  # packed weight, scales and bias on the layer's device
        pack_into(new, w, bits, group_size)
        if layer.bias is not None:
            new.bias.data.copy_(layer.bias.detach())
        return new

    @classmethod
    def from_codes(cls, layer: nn.Linear, q: np.ndarray, scale: np.ndarray, bits: int, group_size: int,
                   input_scale: Optional[np.ndarray] = None) -> "WeightOnlyLinear":
        """The layer for integer codes ``q`` ``(out, in)`` and scales ``(out, in // group_size)`` found
        elsewhere (GPTQ, AWQ), with ``layer``'s bias; ``input_scale``: AWQ's per-input-channel ``s``."""
        gs = 0 if group_size in (None, layer.in_features) else int(group_size)
        new = cls(layer.in_features, layer.out_features, bits, gs, layer.bias is not None,
                  input_scale is not None).to(layer.weight.device)
        store_codes(new, q, scale, bits)
        if input_scale is not None:
            new.input_scale.copy_(torch.from_numpy(np.asarray(input_scale, np.float32)))
        if layer.bias is not None:
            new.bias.data.copy_(layer.bias.detach())
        return new

    def dequantized_weight(self) -> torch.Tensor:
        w = unpack(self, (self.out_features, self.in_features))
        scale = getattr(self, "input_scale", None)
        return w if scale is None else w / scale

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (for code that reads ``layer.weight``; recomputed on access)."""
        return self.dequantized_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.dequantized_weight().to(x.dtype), self.bias)


@register_class
class WeightOnlyConv2d(nn.Module):
    """A Conv2d whose weight is stored as packed ``bits``-bit integers with per-group scales (see :class:`WeightOnlyLinear`)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: tuple = (1, 1), stride: tuple = (1, 1),
                 padding: tuple = (0, 0), dilation: tuple = (1, 1), groups: int = 1, bits: int = 4,
                 group_size: int = 0, has_bias: bool = True) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.groups = int(in_channels), int(out_channels), int(groups)
        self.kernel_size, self.stride = tuple(kernel_size), tuple(stride)
        self.padding, self.dilation = tuple(padding), tuple(dilation)
        self.bits, self.group_size, self.has_bias = int(bits), int(group_size), bool(has_bias)
        fan_in = self.in_channels // self.groups * int(np.prod(self.kernel_size))
        n = self.out_channels * fan_in
        self.register_buffer("packed", torch.zeros((n + 1) // 2 if bits == 4 else n,
                                                   dtype=torch.uint8 if bits == 4 else torch.int8))
        self.register_buffer("scale", torch.ones(n // (self.group_size or fan_in)))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if has_bias else None

    @classmethod
    def from_float(cls, layer: nn.Conv2d, bits: int = 4, group_size: Optional[int] = None) -> "WeightOnlyConv2d":
        new = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                  layer.dilation, layer.groups, bits, group_size or 0, layer.bias is not None)
        new = new.to(layer.weight.device)
        w = layer.weight.detach().float().cpu().numpy()
        pack_into(new, w.reshape(w.shape[0], -1), bits, group_size)
        if layer.bias is not None:
            new.bias.data.copy_(layer.bias.detach())
        return new

    def dequantized_weight(self) -> torch.Tensor:
        fan_in = self.in_channels // self.groups * int(np.prod(self.kernel_size))
        w = unpack(self, (self.out_channels, fan_in))
        return w.reshape(self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized weight (for code that reads ``layer.weight``; recomputed on access)."""
        return self.dequantized_weight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.conv2d(x, self.dequantized_weight().to(x.dtype), self.bias, self.stride,
                                    self.padding, self.dilation, self.groups)


def pack_into(module: nn.Module, w2d: np.ndarray, bits: int, group_size: Optional[int]) -> None:
    """Quantize a (out, fan_in) weight per group along fan_in (per row if no group size); store it."""
    gs = group_size or w2d.shape[1]
    if w2d.shape[1] % gs:
        raise ValueError(f"WeightOnly.group_size must divide the layer's fan-in {w2d.shape[1]}, got {gs}")
    qt = cq.quantize_tensor(w2d, bits=bits, symmetric=True, axis=1, group_size=gs)
    store_codes(module, qt.q, qt.scale, bits)


def packed_size(n: int, bits: int) -> int:
    """Bytes (elements of the ``packed`` buffer) that ``n`` codes of ``bits`` bits take."""
    return n if bits == 8 else (n + 1) // 2 if bits == 4 else (n * bits + 7) // 8


def packed_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits == 8 else torch.uint8


def store_codes(module: nn.Module, q: np.ndarray, scale: np.ndarray, bits: int) -> None:
    """Pack integer codes (any shape, C order) and their scales into ``module.packed`` / ``module.scale``."""
    q = np.asarray(q).reshape(-1)
    packed = q.astype(np.int8) if bits == 8 else cq.pack_int4(q) if bits == 4 else cq.pack_bits(q, bits)
    module.packed.copy_(torch.from_numpy(packed).to(module.packed.device))
    module.scale.copy_(torch.from_numpy(np.asarray(scale, np.float32).reshape(-1)).to(module.scale.device))


def unpack(module: nn.Module, shape: tuple) -> torch.Tensor:
    n = int(np.prod(shape))
    if module.bits == 4:
        p = module.packed
        q = torch.stack([(p & 0x0F).to(torch.int8) - 8, (p >> 4).to(torch.int8) - 8], dim=1).reshape(-1)[:n]
    elif module.bits < 8:
        b = module.bits
        p = module.packed.to(torch.int16)
        stream = ((p[:, None] >> torch.arange(8, device=p.device, dtype=torch.int16)) & 1).reshape(-1)
        weights = 1 << torch.arange(b, device=p.device, dtype=torch.int16)
        q = (stream[: n * b].reshape(n, b) * weights).sum(1) - (1 << (b - 1))
    else:
        q = module.packed
    gs = module.group_size or shape[1]
    return (q.reshape(-1, gs).float() * module.scale.reshape(-1, 1)).reshape(shape)


# --------------------------------------------------------------------------- factored layers (low rank)


class _Factors:
    """Sequence access to the factor layers (children ``0``, ``1``, …), as ``nn.Sequential`` gives."""

    def __iter__(self):
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, index: int) -> nn.Module:
        return list(self._modules.values())[index]


@register_class
class FactoredLinear(_Factors, nn.Linear):
    """An SVD-factored ``nn.Linear``: ``Linear(in→r, no bias)`` then ``Linear(r→out)``.

    It *is* an ``nn.Linear`` with the original ``in_features``/``out_features``, so a
    model's own code that reads them, or reads ``.weight`` (the product of the
    factors, recomputed on access) and ``.bias``, keeps working; the factors are its
    children ``0`` and ``1`` and are what trains, saves and quantizes.

    Example:
        >>> f = FactoredLinear(nn.Linear(8, 2, bias=False), nn.Linear(2, 5))
        >>> f.in_features, f.out_features, f.rank, tuple(f.weight.shape)
        (8, 5, 2, (5, 8))
        >>> x = torch.randn(3, 8)
        >>> bool(torch.allclose(f(x), torch.nn.functional.linear(x, f.weight, f.bias), atol=1e-6))
        True
    """

    def __init__(self, first: nn.Linear, last: nn.Linear) -> None:
        nn.Module.__init__(self)
        if first.out_features != last.in_features or first.bias is not None:
            raise ValueError("first must be Linear(in→r, bias=False) and last Linear(r→out)")
        self.in_features, self.out_features, self.rank = first.in_features, last.out_features, first.out_features
        self.add_module("0", first)
        self.add_module("1", last)

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        return self[1].weight @ self[0].weight

    @property
    def bias(self) -> Optional[torch.Tensor]:  # type: ignore[override]
        return self[1].bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self[1](self[0](x))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, rank={self.rank}"


_CONV_ATTRS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
               "padding_mode", "transposed", "output_padding", "_reversed_padding_repeated_twice")


@register_class
class FactoredConv2d(_Factors, nn.Conv2d):
    """A Tucker-2 or CP factored ``nn.Conv2d``: the factor convolutions as children ``0``, ``1``, …

    Keeps the original layer's attributes (``in_channels``, ``out_channels``,
    ``kernel_size``, ``stride``, ``padding``, …) so that a model's code reading them
    still runs; ``.weight`` is the dense kernel the factors stand for (recomputed
    on access) and ``.bias`` the last factor's.

    ``kind``: ``"tucker"`` (``[1×1 C_in→R1,] k×k R1→R2 [, 1×1 R2→C_out]``; a 1×1
    factor at full rank is absorbed, Tucker-1) or ``"cp"`` (1×1, depthwise kh×1,
    depthwise 1×kw, 1×1).

    Example:
        >>> conv = nn.Conv2d(4, 6, 3, padding=1)
        >>> f = FactoredConv2d(conv, [nn.Conv2d(4, 2, 1, bias=False), nn.Conv2d(2, 3, 3, padding=1, bias=False),
        ...                           nn.Conv2d(3, 6, 1)], kind="tucker", has_first=True, has_last=True)
        >>> f.in_channels, f.out_channels, f.stride, tuple(f.weight.shape)
        (4, 6, (1, 1), (6, 4, 3, 3))
        >>> x = torch.randn(1, 4, 5, 5)
        >>> bool(torch.allclose(f(x), nn.functional.conv2d(x, f.weight, f.bias, padding=1), atol=1e-5))
        True
    """

    def __init__(self, original: nn.Conv2d, factors: list, kind: str, has_first: bool = True,
                 has_last: bool = True) -> None:
        nn.Module.__init__(self)
        if kind not in ("tucker", "cp"):
            raise ValueError(f"kind must be 'tucker' or 'cp', got {kind!r}")
        for attr in _CONV_ATTRS:
            setattr(self, attr, getattr(original, attr))
        self.kind, self.has_first, self.has_last = kind, bool(has_first), bool(has_last)
        for i, factor in enumerate(factors):
            self.add_module(str(i), factor)

    @property
    def weight(self) -> torch.Tensor:  # type: ignore[override]
        ws = [m.weight for m in self]
        if self.kind == "cp":
            first, vertical, horizontal, last = ws
            return torch.einsum("or,rh,rw,ri->oihw", last[:, :, 0, 0], vertical[:, 0, :, 0],
                                horizontal[:, 0, 0, :], first[:, :, 0, 0])
        core = ws[1] if self.has_first else ws[0]
        if self.has_first:
            core = torch.einsum("bahw,ai->bihw", core, ws[0][:, :, 0, 0])
        if self.has_last:
            core = torch.einsum("ob,bihw->oihw", ws[-1][:, :, 0, 0], core)
        return core

    @property
    def bias(self) -> Optional[torch.Tensor]:  # type: ignore[override]
        return self[len(self) - 1].bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for m in self:
            x = m(x)
        return x

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"kind={self.kind!r}")


__all__ = ["PointwiseConv2d", "WeightOnlyLinear", "WeightOnlyConv2d", "FactoredLinear", "FactoredConv2d",
           "pack_into", "unpack", "store_codes", "packed_size", "packed_dtype"]
