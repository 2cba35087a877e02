"""Layers compresslib puts into PyTorch models.

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

import torch
from torch import nn

from compresslib.io import register_class


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
