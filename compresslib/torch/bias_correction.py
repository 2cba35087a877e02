"""Empirical bias correction for ``Int8Static`` (FX) models: the mean error of each int8 layer, removed.

Rounding weights to int8 and activations to uint8 shifts the *mean* of each
layer's output channels a little, and the shifts add up through the network.
After calibration compresslib measures, on the first calibration batch:

* the float mean of every quantized Conv/Linear output channel (before its fused
  ReLU), in the float model with BatchNorm folded, and
* the same mean in the int8 model, layer after layer in graph order, each layer
  seeing the int8 outputs of the layers before it, already corrected;

and adds the difference to the layer's bias (the int8 kernels keep biases in
float). This is the "empirical bias correction" of Nagel et al., *Data-Free
Quantization* (2019), sec. 4.2, in the sequential form NNCF's ``BiasCorrection``
uses. No library exposes it for ``torch.ao`` FX models, so it is written here; the
int8 layers are read through their QDQ twins (:mod:`compresslib.torch.export`),
which compute what the int8 kernels compute before requantisation.

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(8, 4))
    >>> q = cl.quantize(m, cl.Int8Static(bias_correction=True), calibration_data=torch.randn(64, 8))
    >>> q.compresslib_recipe["bias_correction"]["layers"]
    1
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

import torch
from torch import nn

from compresslib.torch import inputs


def _channel_axis(module: nn.Module, t: torch.Tensor) -> int:
    """The output's channel axis: the last for a linear layer (``(N, ..., features)``: a sequence's tokens are
    on axis 1), axis 1 for a convolution."""
    linear = isinstance(module, nn.Linear) or type(module).__name__ == "QDQLinear"  # the int8 twin of a Linear
    return t.dim() - 1 if linear else min(1, t.dim() - 1)


def _channel_mean(t: torch.Tensor, axis: int = 1) -> torch.Tensor:
    """Mean over every dimension but the channel one (``axis``), in float64."""
    dims = [d for d in range(t.dim()) if d != axis]
    return t.detach().double().mean(dim=dims) if dims else t.detach().double()


_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _inner(module: nn.Module) -> nn.Module:
    """A fused X+ReLU module (``ConvReLU2d``, ``LinearReLU``: a Sequential) → its X; any other → itself."""
    return module[0] if isinstance(module, nn.Sequential) and len(module) else module


def float_means_hooks(prepared: nn.Module) -> tuple[dict[str, torch.Tensor], Callable[[], None]]:
    """Hooks on the float (observed) FX model that record each Conv/Linear layer's pre-ReLU channel means.

    Keyed by the module names ``convert_fx`` keeps for the int8 layers (layers kept float are
    recorded too, and not used). Returns the dict the hooks fill and a function removing them.
    Only the first call through the model is recorded.
    """
    means: dict[str, torch.Tensor] = {}
    handles = []
    names: list[str] = []
    for name, module in prepared.named_modules():
        if name and not any(name.startswith(n + ".") for n in names) and isinstance(_inner(module), _LAYERS):
            names.append(name)
    for name in names:
        inner = _inner(prepared.get_submodule(name))

        def hook(_mod, _inp, out, name=name):
            if name not in means and isinstance(out, torch.Tensor):
                means[name] = _channel_mean(out, _channel_axis(_mod, out))

        handles.append(inner.register_forward_hook(hook))
    return means, lambda: [h.remove() for h in handles]


def quantized_layer_targets(q: torch.fx.GraphModule) -> dict[str, str]:
    """``{node name: module name}`` of the int8 Conv/Linear layers of a converted FX model."""
    from compresslib.torch.qdq import fetch, quantized_kind

    return {n.name: str(n.target) for n in q.graph.nodes if n.op == "call_module"
            and quantized_kind(fetch(q, n.target)) in ("conv", "conv_relu", "linear", "linear_relu")}


def _deltas(q: torch.fx.GraphModule, float_means: dict[str, torch.Tensor], batch: Any,
            full_range: bool) -> dict[str, torch.Tensor]:
    """Each int8 layer's bias change, found in one pass through ``q``'s QDQ twin (corrected as it goes)."""
    from compresslib.torch.qdq import QDQConv2d, QDQLinear, reference_model

    ref = reference_model(q, full_range=full_range)
    deltas: dict[str, torch.Tensor] = {}

    def corrected_forward(m: nn.Module, module_name: str) -> Callable:
        def forward(x: torch.Tensor) -> torch.Tensor:
            y = m.pre_activation(x)
            target = float_means.get(module_name)
            axis = _channel_axis(m, y)
            if target is not None and module_name not in deltas and target.shape[0] == y.shape[axis]:
                delta = (target - _channel_mean(y, axis)).float()
                deltas[module_name] = delta
                y = y + delta.view([-1 if d == axis else 1 for d in range(y.dim())])
            return m.requantize(y)
        return forward

    for node_name, module_name in quantized_layer_targets(q).items():
        m = ref.get_submodule(node_name)
        if isinstance(m, (QDQConv2d, QDQLinear)):
            m.forward = corrected_forward(m, module_name)
    with torch.inference_mode():
        inputs.call(ref, batch)
    return deltas


def correct(q: torch.fx.GraphModule, float_means: dict[str, torch.Tensor], batch: Any) -> dict[str, Any]:
    """Add each int8 layer's mean output error to its bias, in place on ``q`` (a fresh converted model).

    Two passes: one on torch's own grid (the corrections go into ``q``), one on the full 8-bit
    grid a ``full_range`` export uses (activation scales × 127/255), whose rounding errors differ;
    the second pass's extra shifts are returned for the exporter.

    Returns ``{"layers": n corrected, "max_shift": largest |bias change|,
    "full_range_shift": {layer: [extra shift per channel]}}``.
    """
    try:
        own = _deltas(q, float_means, batch, full_range=False)
        full = _deltas(q, float_means, batch, full_range=True)
    except ValueError as exc:  # a layer without a QDQ twin (e.g. an int8 Conv1d): the int8 model stays as is
        reason = str(exc)[:300]
        warnings.warn(f"quantize(Int8Static): bias correction skipped: it reads each int8 layer through its QDQ "
                      f"twin, and {reason}", UserWarning, stacklevel=4)
        return {"layers": 0, "max_shift": 0.0, "full_range_shift": {}, "skipped": reason}
    shift = 0.0
    for module_name, delta in own.items():
        module = q.get_submodule(module_name)
        bias = module.bias()
        new = delta.clone() if bias is None else bias.detach().float() + delta
        module.set_weight_bias(module.weight(), new)
        shift = max(shift, float(delta.abs().max()))
    extra = {name: [float(v) for v in (full[name] - own[name])] for name in own if name in full}
    return {"layers": len(own), "max_shift": shift, "full_range_shift": extra}


def check_note(note: Any) -> None:
    """Validate a saved ``bias_correction`` recipe entry (a file is never trusted)."""
    if not isinstance(note, dict) or set(note) - {"layers", "max_shift", "full_range_shift", "skipped"}:
        raise ValueError("the recipe's bias_correction must be an object with layers, max_shift, full_range_shift")
    if not isinstance(note.get("skipped", ""), str):
        raise ValueError("the recipe's bias_correction.skipped must be a string")
    extra = note.get("full_range_shift", {})
    if not isinstance(extra, dict) or not all(isinstance(k, str) and isinstance(v, list) for k, v in extra.items()):
        raise ValueError("the recipe's bias_correction.full_range_shift must map layer names to lists of numbers")
    if sum(len(v) for v in extra.values()) > 2 ** 22:
        raise ValueError("the recipe's bias_correction.full_range_shift is too large")
    for v in extra.values():
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            raise ValueError("the recipe's bias_correction.full_range_shift must hold numbers only")
