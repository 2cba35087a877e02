"""PyTorch side of :func:`compresslib.transfer`: weight layers in the canonical (PyTorch) layout.

Example:
    >>> from compresslib.torch.models import build
    >>> layers = read_layers(build("lenet5"))
    >>> [(lw.name, lw.kind, tuple(lw.arrays["weight"].shape)) for lw in layers][:2]
    [('0', 'conv', (6, 1, 5, 5)), ('3', 'conv', (16, 6, 5, 5))]
    >>> arch_name(build("invres_x0.5"))
    'invres_x0.5'
"""
from __future__ import annotations

import copy
from typing import Optional

import numpy as np
import torch
from torch import nn

from compresslib.core.layer_weights import Factored, LayerWeights

_BN = (nn.BatchNorm1d, nn.BatchNorm2d)


def _np(t: Optional[torch.Tensor]) -> Optional[np.ndarray]:
    return None if t is None else t.detach().cpu().float().numpy().copy()


def _signature(model: nn.Module) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in model.state_dict().items()]


def arch_name(model: nn.Module) -> Optional[str]:
    """The architecture's name: ``model.arch_name`` (set by ``build``), else a reference model whose
    state_dict has exactly the same names and shapes, else None."""
    name = getattr(model, "arch_name", None)
    if isinstance(name, str):
        return name
    from compresslib.torch.models import MODEL_NAMES, build

    mine = _signature(model)
    for candidate in MODEL_NAMES:
        ref = build(candidate)
        if _signature(ref) == mine:
            return candidate
    return None


def factored(model: nn.Module) -> dict[str, Factored]:
    """``{module name: Factored}`` for each ``FactoredConv2d``/``FactoredLinear`` (``cl.decompose``'s layers).

    Example:
        >>> import compresslib as cl
        >>> from compresslib.torch.models import build
        >>> d = cl.decompose(build("lenet5"), cl.SVD(rank=8), layers=["7"])
        >>> factored(d)
        {'7': Factored(kind='svd', rank=8, factors={0: '7.0', 1: '7.1'})}
    """
    from compresslib.torch.layers import FactoredConv2d, FactoredLinear

    out = {}
    for name, m in model.named_modules():
        children = [f"{name}.{c}" for c in m._modules]
        if isinstance(m, FactoredLinear):
            out[name] = Factored("svd", int(m.rank), dict(enumerate(children)))
        elif isinstance(m, FactoredConv2d) and m.kind == "cp":
            out[name] = Factored("cp", int(m[0].out_channels), dict(enumerate(children)))
        elif isinstance(m, FactoredConv2d):
            idx = [0] * m.has_first + [1] + [2] * m.has_last
            core = m[1 if m.has_first else 0]
            out[name] = Factored("tucker", (int(core.in_channels), int(core.out_channels)),
                                 dict(zip(idx, children)))
    return out


def read_layers(model: nn.Module) -> list[LayerWeights]:
    """Every Conv2d, Linear, BatchNorm, Embedding and LayerNorm of ``model`` in module order (``ValueError`` naming any other
    module that owns weights). A decomposed layer is listed as its factor layers (see :func:`factored`)."""
    from compresslib.torch.layers import FactoredConv2d, FactoredLinear

    out = []
    for name, m in model.named_modules():
        if isinstance(m, (FactoredConv2d, FactoredLinear)):
            continue  # its factors, its children, are listed next
        if isinstance(m, nn.Conv2d):
            arrays = {"weight": _np(m.weight)}
            if m.bias is not None:
                arrays["bias"] = _np(m.bias)
            attrs = {"stride": tuple(int(s) for s in m.stride), "groups": int(m.groups)}
            out.append(LayerWeights(name, "conv", arrays, attrs))
        elif isinstance(m, nn.Linear):
            arrays = {"weight": _np(m.weight)}
            if m.bias is not None:
                arrays["bias"] = _np(m.bias)
            out.append(LayerWeights(name, "linear", arrays))
        elif isinstance(m, nn.Embedding):
            out.append(LayerWeights(name, "embedding", {"weight": _np(m.weight)}))
        elif isinstance(m, nn.LayerNorm):
            if m.weight is None or m.bias is None:
                raise ValueError(f"model: layer {name!r} is a LayerNorm without scale or bias; transfer "
                                 "moves LayerNorms with both")
            out.append(LayerWeights(name, "layernorm", {"weight": _np(m.weight), "bias": _np(m.bias)},
                                    {"eps": float(m.eps)}))
        elif isinstance(m, _BN):
            if m.running_mean is None:
                raise ValueError(f"model: layer {name!r} keeps no running statistics (track_running_stats=False)")
            n = m.num_features
            arrays = {"weight": _np(m.weight) if m.affine else np.ones(n, np.float32),
                      "bias": _np(m.bias) if m.affine else np.zeros(n, np.float32),
                      "running_mean": _np(m.running_mean), "running_var": _np(m.running_var)}
            out.append(LayerWeights(name, "batchnorm", arrays, {"eps": float(m.eps)}))
        elif any(p is not None for p in m._parameters.values()):
            raise ValueError(f"model: layer {name!r} ({type(m).__name__}) holds weights transfer does not know "
                             "(it moves Conv2d, Linear, BatchNorm, Embedding and LayerNorm)")
    return out


def write_layers(model: nn.Module, assignments: dict[str, LayerWeights]) -> None:
    """Copy canonical arrays into ``model``'s modules by name, in place."""
    with torch.no_grad():
        for name, lw in assignments.items():
            m = model.get_submodule(name)
            if lw.kind == "batchnorm":
                if m.affine:
                    m.weight.copy_(torch.from_numpy(lw.arrays["weight"]))
                    m.bias.copy_(torch.from_numpy(lw.arrays["bias"]))
                m.running_mean.copy_(torch.from_numpy(lw.arrays["running_mean"]))
                m.running_var.copy_(torch.from_numpy(lw.arrays["running_var"]))
            else:
                m.weight.copy_(torch.from_numpy(lw.arrays["weight"]))
                if "bias" in lw.arrays:
                    m.bias.copy_(torch.from_numpy(lw.arrays["bias"]))
    model.eval()


def copy_model(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model).cpu()


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _nchw(x_nhwc: np.ndarray, model: nn.Module) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x_nhwc.transpose(0, 3, 1, 2))).to(_device(model))


def outputs(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """``model``'s outputs on an NHWC batch (given to it as NCHW; token ids as they are), in eval mode;
    the model's mode is restored."""
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            inp = _nchw(x, model) if x.ndim == 4 else torch.from_numpy(x).to(_device(model))
            return model(inp).float().cpu().numpy()
    finally:
        model.train(was)


def layer_outputs(model: nn.Module, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Outputs of the named modules on one NHWC batch ``x`` (4-D ones as NHWC, to compare with Keras)."""
    modules = dict(model.named_modules())
    found: dict[str, np.ndarray] = {}
    hooks = []
    for n in names:
        if n in modules:
            def hook(_m, _i, out, n=n):
                a = out.detach().float().cpu().numpy()
                found[n] = a.transpose(0, 2, 3, 1) if a.ndim == 4 else a
            hooks.append(modules[n].register_forward_hook(hook))
    try:
        outputs(model, x)
    finally:
        for h in hooks:
            h.remove()
    return found
