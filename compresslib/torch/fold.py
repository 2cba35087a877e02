"""Fold BatchNorm into the convolution or Linear layer before it (PyTorch).

In eval mode a BatchNorm is an affine map per channel, ``s·(z − μ) + β`` with
``s = γ/√(σ² + ε)``; applied to ``z = Wx + b`` it is the same layer with
``W' = s·W`` and ``b' = s·(b − μ) + β`` (``compresslib.core.lowrank.fold_bn``).
The folded model has no BatchNorm left to compute, so it is smaller and faster,
and it gives the same outputs as the original *in eval mode* to float tolerance.

Which BatchNorm follows which layer is read from the ``torch.fx`` graph, so
residual models (a BN after the conv of a branch, another after the 1×1
shortcut conv) are handled; a BN whose input is not the output of a conv/Linear
used only by it is left as it is and named in one warning. Models that
``torch.fx`` cannot trace fall back to adjacent pairs inside ``nn.Sequential``.
PyTorch's own ``torch.nn.utils.fusion.fuse_conv_bn_eval`` does the arithmetic for one
pair; this module finds the pairs and keeps the module tree (each folded BN
becomes ``nn.Identity``), so ``compresslib.save`` and quantization see ordinary layers.

Example:
    >>> import torch
    >>> from compresslib.torch.models import build
    >>> m = build("resnet8").eval()
    >>> f = fold_batchnorm(m)
    >>> sum(isinstance(x, torch.nn.BatchNorm2d) for x in f.modules())
    0
    >>> x = torch.randn(2, 1, 28, 28)
    >>> bool(torch.allclose(f(x), m(x), atol=1e-5))
    True
"""
from __future__ import annotations

import copy
import warnings

import torch
from torch import nn

from compresslib.core.lowrank import fold_bn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_PRODUCERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _pairs_fx(model: nn.Module) -> tuple[list[tuple[str, str]], dict[str, str]]:
    import torch.fx

    from compresslib.torch.layers import PointwiseConv2d

    class _Tracer(torch.fx.Tracer):  # compresslib's own conv subclasses are layers, not code to trace into
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, PointwiseConv2d) or super().is_leaf_module(m, qualname)

    graph = _Tracer().trace(model)
    modules = dict(model.named_modules())
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    pairs, skipped = [], {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules[node.target], _BN):
            continue
        src = node.args[0] if node.args else None
        producer = modules.get(src.target) if getattr(src, "op", None) == "call_module" else None
        if not isinstance(producer, _PRODUCERS):
            skipped[node.target] = "its input is not a Conv/Linear output"
        elif len(src.users) != 1:
            skipped[node.target] = f"{src.target}'s output is also used elsewhere"
        elif calls[src.target] != 1 or calls[node.target] != 1:
            skipped[node.target] = "the layer or the BatchNorm is called more than once"
        else:
            pairs.append((src.target, node.target))
    return pairs, skipped


def _pairs_sequential(model: nn.Module) -> tuple[list[tuple[str, str]], dict[str, str]]:
    pairs, skipped = [], {}
    for name, mod in model.named_modules():
        if not isinstance(mod, nn.Sequential):
            continue
        children = list(mod.named_children())
        for (n1, a), (n2, b) in zip(children, children[1:]):
            if isinstance(b, _BN) and isinstance(a, _PRODUCERS):
                pairs.append((f"{name}.{n1}" if name else n1, f"{name}.{n2}" if name else n2))
    found = {bn for _, bn in pairs}
    for name, mod in model.named_modules():
        if isinstance(mod, _BN) and name not in found:
            skipped[name] = "not directly after a Conv/Linear in an nn.Sequential (model not traceable by torch.fx)"
    return pairs, skipped


def batchnorm_pairs(model: nn.Module) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``[(layer_name, bn_name), ...]`` that can be folded, and ``{bn_name: reason}`` for those that cannot."""
    try:
        return _pairs_fx(model)
    except Exception:  # noqa: BLE001  (fx cannot trace data-dependent control flow)
        return _pairs_sequential(model)


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every BatchNorm that follows a Conv/Linear folded into it.

    The folded BN modules are replaced by ``nn.Identity``; the conv/Linear gains
    a bias if it had none. Outputs equal the original's in eval mode (the BN's
    running statistics are used); the copy keeps the original's train/eval flag.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pairs, skipped = batchnorm_pairs(model)
    out = copy.deepcopy(model)
    for layer_name, bn_name in pairs:
        layer, bn = out.get_submodule(layer_name), out.get_submodule(bn_name)
        if not bn.track_running_stats or bn.running_mean is None:
            skipped[bn_name] = "no running statistics (track_running_stats=False)"
            continue
        w = layer.weight.detach()
        ones = torch.ones_like(bn.running_mean)
        gamma = bn.weight.detach() if bn.affine else ones
        beta = bn.bias.detach() if bn.affine else torch.zeros_like(ones)
        new_w, new_b = fold_bn(w.cpu().double().numpy(),
                               None if layer.bias is None else layer.bias.detach().cpu().double().numpy(),
                               gamma.cpu().double().numpy(), beta.cpu().double().numpy(),
                               bn.running_mean.cpu().double().numpy(), bn.running_var.cpu().double().numpy(),
                               bn.eps, out_axis=0)
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(new_w, dtype=w.dtype, device=w.device))
            layer.bias = nn.Parameter(torch.as_tensor(new_b, dtype=w.dtype, device=w.device))
        _replace(out, bn_name, nn.Identity())
    if skipped:
        warnings.warn(f"fold_batchnorm: left {len(skipped)} BatchNorm layer(s) unfolded: "
                      + "; ".join(f"{n}: {why}" for n, why in skipped.items()), UserWarning, stacklevel=2)
    return out
