"""The int8 twin layers: a torch int8 model re-expressed as a float graph of quantize/dequantize (Q/DQ) ops.

A *QDQ reference model* computes what a ``torch.ao`` int8 model computes, with compresslib's own
scales and zero points: each quantized activation is ``dequantize(quantize(x))`` and each int8
weight is stored as int8 with its per-channel scales (``QDQConv2d``, ``QDQLinear``,
``QDQAdd``, ``QDQDynamicLinear``). The runtime writers (:mod:`compresslib.torch.export`)
export it; bias correction (:mod:`compresslib.torch.bias_correction`) runs its layers' arithmetic.

Helpers: :func:`quantized_kind` (what a torch.ao module is), ``fetch`` (an FX node's module),
:func:`unsupported_layers` (what has no Q/DQ translation), :func:`is_int8`, :func:`reference_model`.

Example:
    >>> import torch
    >>> m = torch.nn.Sequential(torch.nn.Linear(4, 2))
    >>> reference_model(m)(torch.zeros(1, 4)).shape, is_int8(m), quantized_kind(m[0])
    (torch.Size([1, 2]), False, None)
"""
from __future__ import annotations

import copy
from typing import Any, Optional

import torch
from torch import nn

from compresslib.torch.io import register as register_class


# --------------------------------------------------------------------------- QDQ ops


def _qd():
    """``torch.ops.quantized_decomposed`` (registered by torchao's pt2e package)."""
    import torchao.quantization.pt2e  # noqa: F401  (registers the quantized_decomposed ops)

    return torch.ops.quantized_decomposed


def _qdq(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    qd = _qd()
    q = qd.quantize_per_tensor.default(x, scale, zero_point, 0, 255, torch.uint8)
    return qd.dequantize_per_tensor.default(q, scale, zero_point, 0, 255, torch.uint8)


@register_class
class QDQ(nn.Module):
    """``dequantize(quantize(x))`` per tensor, uint8, with a fixed scale and zero point."""

    def __init__(self, scale: float, zero_point: int) -> None:
        super().__init__()
        self.scale, self.zero_point = float(scale), int(zero_point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _qdq(x, self.scale, self.zero_point)


class _Int8Weight(nn.Module):
    """Holds an int8 weight with per-channel (axis 0) scales; ``weight()`` dequantizes it."""

    def _set_weight(self, w: torch.Tensor) -> None:
        if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
            scales = w.q_per_channel_scales().float()
            zps = w.q_per_channel_zero_points().long()
            if int(w.q_per_channel_axis()) != 0:
                raise ValueError("per-channel weight scales along an axis other than 0 are not supported")
        else:
            scales = torch.full((w.shape[0],), float(w.q_scale()))
            zps = torch.full((w.shape[0],), int(w.q_zero_point()), dtype=torch.long)
        self.register_buffer("weight_int8", w.int_repr().clone())
        self.register_buffer("weight_scale", scales.clone())
        self.register_buffer("weight_zero_point", zps.clone())

    def weight(self) -> torch.Tensor:
        return _qd().dequantize_per_channel.default(self.weight_int8, self.weight_scale, self.weight_zero_point,
                                                    0, -128, 127, torch.int8)


class _Int8Output(_Int8Weight):
    """An int8 layer with a uint8 output: ``pre_activation`` (the float product), then ``requantize``."""

    relu: bool
    scale: float
    zero_point: int

    def requantize(self, y: torch.Tensor) -> torch.Tensor:
        """The fused ReLU (if any), then the output's Q/DQ."""
        return _qdq(torch.relu(y) if self.relu else y, self.scale, self.zero_point)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.requantize(self.pre_activation(x))


@register_class
class QDQConv2d(_Int8Output):
    """A quantized Conv2d (optionally fused ReLU) as float ops between Q/DQ pairs."""

    def __init__(self, qconv: nn.Module, relu: bool) -> None:
        super().__init__()
        if getattr(qconv, "padding_mode", "zeros") != "zeros":
            raise ValueError(f"padding_mode {qconv.padding_mode!r} is not supported")
        self._set_weight(qconv.weight())
        bias = qconv.bias()
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)
        self.stride, self.padding = tuple(qconv.stride), tuple(qconv.padding)
        self.dilation, self.groups, self.relu = tuple(qconv.dilation), int(qconv.groups), relu
        self.scale, self.zero_point = float(qconv.scale), int(qconv.zero_point)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution in float, before the ReLU and the output's Q/DQ."""
        return nn.functional.conv2d(x, self.weight(), self.bias, self.stride, self.padding, self.dilation, self.groups)


@register_class
class QDQLinear(_Int8Output):
    """A quantized Linear (optionally fused ReLU) as float ops between Q/DQ pairs."""

    def __init__(self, qlinear: nn.Module, relu: bool) -> None:
        super().__init__()
        self._set_weight(qlinear.weight())
        bias = qlinear.bias()
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)
        self.relu = relu
        self.scale, self.zero_point = float(qlinear.scale), int(qlinear.zero_point)

    def pre_activation(self, x: torch.Tensor) -> torch.Tensor:
        """The matrix product in float, before the ReLU and the output's Q/DQ."""
        return nn.functional.linear(x, self.weight(), self.bias)


@register_class
class QDQAdd(nn.Module):
    """The quantized residual ``+`` (optionally fused ReLU): float add, then Q/DQ."""

    def __init__(self, scale: float, zero_point: int, relu: bool) -> None:
        super().__init__()
        self.scale, self.zero_point, self.relu = float(scale), int(zero_point), relu

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        y = a + b
        return _qdq(torch.relu(y) if self.relu else y, self.scale, self.zero_point)


# --------------------------------------------------------------------------- dynamic int8 Linear


_DYNAMIC_OP = None


def dynamic_qdq_op():
    """``compresslib::dynamic_qdq``: per-batch uint8 fake-quantization with ONNX ``DynamicQuantizeLinear``'s rule.

    scale = (max(x, 0) - min(x, 0)) / 255, zero point = round(-min / scale) (saturated),
    q = saturate(round(x / scale) + zero point). Exported to ONNX as
    ``DynamicQuantizeLinear`` then ``DequantizeLinear`` (the translation is in :mod:`compresslib.torch.export`).
    """
    global _DYNAMIC_OP
    if _DYNAMIC_OP is None:
        @torch.library.custom_op("compresslib::dynamic_qdq", mutates_args=())
        def dynamic_qdq(x: torch.Tensor) -> torch.Tensor:
            lo = torch.clamp(x.min(), max=0.0)
            hi = torch.clamp(x.max(), min=0.0)
            scale = torch.clamp((hi - lo) / 255.0, min=torch.finfo(torch.float32).eps)
            zp = torch.clamp(torch.round(-lo / scale), 0, 255)
            q = torch.clamp(torch.round(x / scale) + zp, 0, 255)
            return (q - zp) * scale

        @dynamic_qdq.register_fake
        def _(x):
            return torch.empty_like(x)

        _DYNAMIC_OP = dynamic_qdq
    return _DYNAMIC_OP


@register_class
class QDQDynamicLinear(_Int8Weight):
    """A dynamically quantized Linear: input fake-quantized per batch, int8 per-channel weight."""

    def __init__(self, qlinear: nn.Module) -> None:
        super().__init__()
        self._set_weight(qlinear.weight())
        bias = qlinear.bias()
        self.bias = None if bias is None else nn.Parameter(bias.detach().float().clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(dynamic_qdq_op()(x), self.weight(), self.bias)


# --------------------------------------------------------------------------- the reference model


def quantized_kind(module: nn.Module) -> Optional[str]:
    """``"conv"``, ``"conv_relu"``, ``"linear"``, ``"linear_relu"``, ``"dynamic_linear"``, ``"other"`` or None (float)."""
    mod = type(module).__module__
    name = type(module).__name__
    if not mod.startswith("torch.ao.nn.") or ".quantized" not in mod:
        return None
    if name.endswith("PackedParams"):  # the packed weight inside a quantized Linear
        return "packed"
    if ".dynamic" in mod:
        return "dynamic_linear" if name == "Linear" else "other"
    table = {"Conv2d": "conv", "ConvReLU2d": "conv_relu", "Linear": "linear", "LinearReLU": "linear_relu",
             "Quantize": "other", "DeQuantize": "other"}
    return table.get(name, "other")


def unsupported_layers(model: nn.Module) -> list[str]:
    """Names (and kinds) of the layers that have no runtime translation; empty when the model exports."""
    from compresslib.torch.layers import WeightOnlyConv2d, WeightOnlyLinear

    bad = []
    for name, m in model.named_modules():
        kind = quantized_kind(m)
        if isinstance(m, (WeightOnlyLinear, WeightOnlyConv2d)):
            bad.append(f"{name!r} ({type(m).__name__}: compresslib's packed weight-only layer)")
        elif kind == "other":
            bad.append(f"{name!r} ({type(m).__module__}.{type(m).__name__})")
        else:
            for pname, p in m.named_parameters(recurse=False):
                if type(p) not in (torch.Tensor, nn.Parameter) and hasattr(p, "__tensor_flatten__"):
                    bad.append(f"{name!r} ({type(m).__name__} with a torchao {type(p).__name__} weight)")
                elif p.is_floating_point() and p.dtype != torch.float32:
                    bad.append(f"{name!r} ({type(m).__name__} with {p.dtype} weights: export the float32 model)")
    return bad


def fetch(gm: nn.Module, target: str) -> Any:
    """The submodule or attribute at the dotted ``target`` of an FX graph node (``"layer1.0.conv"``)."""
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _scalar(v: Any) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)


def _shift_bias(layer: nn.Module, shift: Optional[list]) -> None:
    if shift is None:
        return
    delta = torch.tensor(shift, dtype=torch.float32)
    if delta.shape != (layer.weight_int8.shape[0],):
        raise ValueError(f"the model's full-range bias correction has {tuple(delta.shape)} values for a layer "
                         f"with {layer.weight_int8.shape[0]} output channels")
    layer.bias = nn.Parameter(delta if layer.bias is None else layer.bias.detach() + delta, requires_grad=False)


def _static_reference(gm: torch.fx.GraphModule, full_range: bool) -> torch.fx.GraphModule:
    """Translate a converted FX int8 GraphModule into a float graph with Q/DQ ops (compresslib's scales)."""
    def qparams(scale: float, zp: int) -> tuple[float, int]:
        if not full_range:
            return scale, zp
        return scale * 127.0 / 255.0, int(round(zp * 255.0 / 127.0))

    # bias corrections found on the full 8-bit grid at quantize time (compresslib.torch.bias_correction)
    shifts = (getattr(gm, "compresslib_recipe", {}).get("bias_correction") or {}).get("full_range_shift", {})
    root = nn.Module()
    graph = torch.fx.Graph()
    env: dict = {}
    qp: dict = {}  # new node -> (scale, zp) of the quantized value it stands for
    for node in gm.graph.nodes:
        args = torch.fx.node.map_arg(node.args, lambda n: env[n])
        kwargs = torch.fx.node.map_arg(node.kwargs, lambda n: env[n])
        if node.op == "placeholder":
            env[node] = graph.placeholder(node.target)
        elif node.op == "get_attr":
            env[node] = ("const", fetch(gm, node.target))
        elif node.op == "output":
            graph.output(args[0])
        elif node.op == "call_function" and node.target is torch.quantize_per_tensor:
            s, z = qparams(_scalar(args[1][1]), int(_scalar(args[2][1])))
            name = f"q_{node.name}"
            root.add_module(name, QDQ(s, z))
            env[node] = graph.call_module(name, (args[0],))
            qp[env[node]] = (s, z)
        elif node.op == "call_method" and node.target == "dequantize":
            env[node] = args[0]
        elif node.op == "call_function" and node.target in (torch.ops.quantized.add, torch.ops.quantized.add_relu):
            s, z = qparams(_scalar(args[2][1]) if isinstance(args[2], tuple) else float(args[2]),
                           int(_scalar(args[3][1]) if isinstance(args[3], tuple) else args[3]))
            name = f"add_{node.name}"
            root.add_module(name, QDQAdd(s, z, node.target is torch.ops.quantized.add_relu))
            env[node] = graph.call_module(name, (args[0], args[1]))
            qp[env[node]] = (s, z)
        elif node.op == "call_module":
            module = fetch(gm, node.target)
            kind = quantized_kind(module)
            name = node.name
            if kind in ("conv", "conv_relu", "linear", "linear_relu"):
                cls = QDQConv2d if kind.startswith("conv") else QDQLinear
                new = cls(module, relu=kind.endswith("relu"))
                if full_range:
                    new.scale, new.zero_point = qparams(new.scale, new.zero_point)
                    _shift_bias(new, shifts.get(str(node.target)))
                root.add_module(name, new)
                env[node] = graph.call_module(name, (args[0],))
                qp[env[node]] = (new.scale, new.zero_point)
            elif kind is None:
                root.add_module(name, copy.deepcopy(module))
                env[node] = graph.call_module(name, args, kwargs)
                src = args[0] if args else None
                if src in qp and isinstance(module, (nn.AdaptiveAvgPool2d, nn.AvgPool2d)):
                    # an average of integers is rounded back onto the input's grid in the int8 model
                    s, z = qp[src]
                    qname = f"q_{name}"
                    root.add_module(qname, QDQ(s, z))
                    env[node] = graph.call_module(qname, (env[node],))
                    qp[env[node]] = (s, z)
                elif src in qp:
                    qp[env[node]] = qp[src]
            else:
                raise ValueError(f"layer {node.target!r} ({type(module).__module__}.{type(module).__name__}) "
                                 "has no QDQ translation")
        elif node.op in ("call_function", "call_method"):
            target = node.target
            if str(target).startswith("quantized."):
                raise ValueError(f"operation {node.name!r} ({target}) has no QDQ translation")
            fn_args = tuple(a[1] if isinstance(a, tuple) and len(a) == 2 and a[0] == "const" else a for a in args)
            env[node] = (graph.call_function(target, fn_args, kwargs) if node.op == "call_function"
                         else graph.call_method(target, fn_args, kwargs))
            src = args[0] if args else None
            if src in qp:
                qp[env[node]] = qp[src]
        else:  # pragma: no cover - fx has no other node kinds
            raise ValueError(f"unexpected FX node {node.op}")
    out = torch.fx.GraphModule(root, graph)
    out.eval()
    return out


def _dynamic_reference(model: nn.Module) -> nn.Module:
    ref = copy.deepcopy(model).eval()

    def swap(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            if quantized_kind(child) == "dynamic_linear":
                setattr(parent, name, QDQDynamicLinear(child))
            else:
                swap(child)

    swap(ref)
    return ref


def is_int8(model: nn.Module) -> bool:
    """True for a torch.ao int8 model (static, QAT-converted or dynamic)."""
    return any(quantized_kind(m) not in (None, "packed") for m in model.modules())


def reference_model(model: nn.Module, full_range: bool = False) -> nn.Module:
    """A float ``nn.Module`` computing what ``model`` computes, with int8 steps written as Q/DQ ops.

    A float model comes back as an eval-mode copy. ``model`` itself is never changed.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    bad = unsupported_layers(model)
    if bad:
        raise ValueError("model: these layers cannot be exported to a runtime: " + "; ".join(bad))
    kinds = {quantized_kind(m) for m in model.modules()} - {None, "packed"}
    if not kinds:
        return copy.deepcopy(model).eval()
    if kinds == {"dynamic_linear"}:
        return _dynamic_reference(model)
    if not isinstance(model, torch.fx.GraphModule):
        raise ValueError("model: an eager-mode static int8 model cannot be exported; use cl.quantize's FX model")
    return _static_reference(model, full_range)


__all__ = ["QDQ", "QDQConv2d", "QDQLinear", "QDQAdd", "QDQDynamicLinear", "dynamic_qdq_op", "quantized_kind", "fetch",
           "unsupported_layers", "is_int8", "reference_model"]
