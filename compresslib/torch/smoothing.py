"""SmoothQuant (Xiao et al. 2023) for torch models: ``cl.transform(model, cl.SmoothQuant(alpha), calibration_data=x)``.

The pairs are found in the module graph (``torch.fx``): a ``LayerNorm`` whose output is read
only by ``Linear`` layers (a pre-LayerNorm transformer's attention and MLP inputs). A LayerNorm
whose output also feeds anything else (a post-LayerNorm model's residual ``+``) is left alone:
folding the scales into it would change the function. The activation maxima come from forward
hooks on ``calibration_data``; the scales from :func:`compresslib.core.smoothing.smoothing_scales`.
A model without such a pair comes back unchanged with one warning; a model ``torch.fx`` cannot
trace is refused before any work, naming the reason (:func:`smooth_pairs` takes pairs found
another way, as the MiniLM case study does).

Example:
    >>> import torch, compresslib as cl
    >>> class Block(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.norm, self.fc = torch.nn.LayerNorm(8), torch.nn.Linear(8, 4)
    ...     def forward(self, x):
    ...         return self.fc(self.norm(x))
    >>> m = Block().eval(); x = torch.randn(16, 8) * torch.tensor([20.0] + [1.0] * 7)
    >>> s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x)
    >>> bool(torch.allclose(s(x), m(x), atol=1e-5)), layernorm_pairs(m)
    (True, {'norm': ['fc']})
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn

from compresslib.configs import SmoothQuant
from compresslib.core.smoothing import check_alpha, check_calibration, smoothing_scales, warn_no_pairs
from compresslib.registry import register
from compresslib.torch import inputs


def layernorm_pairs(model: nn.Module) -> dict[str, list[str]]:
    """``{LayerNorm name: [Linear names]}`` for every LayerNorm (with scale and shift) read only by Linear layers.

    Raises ``ValueError`` naming the reason when ``torch.fx`` cannot trace ``model``.
    """
    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure is the model's, reported by name
        raise ValueError(f"model: SmoothQuant reads the module graph with torch.fx, which cannot trace "
                         f"{type(model).__name__} ({type(exc).__name__}: {str(exc)[:200]}); pass the "
                         f"(producer, readers) pairs to compresslib.torch.smoothing.smooth_pairs instead") from None
    modules = dict(gm.named_modules())
    out = {}
    for node in gm.graph.nodes:
        norm = modules.get(node.target) if node.op == "call_module" else None
        if not (isinstance(norm, nn.LayerNorm) and norm.elementwise_affine and norm.bias is not None
                and len(norm.normalized_shape) == 1):
            continue
        readers = [modules.get(u.target) if u.op == "call_module" else None for u in node.users]
        if readers and all(isinstance(r, nn.Linear) and r.in_features == norm.normalized_shape[0] for r in readers) \
                and all(u.args == (node,) and not u.kwargs for u in node.users):
            out[str(node.target)] = [str(u.target) for u in node.users]
    return out


def smooth_pairs(model: nn.Module, pairs: dict[str, Sequence[str]], calibration_data: Any, alpha: float) -> nn.Module:
    """Smooth ``model`` in place for ``{producer name: [reader names]}`` and return it.

    A producer is a ``LayerNorm`` or a ``Linear`` layer whose output channel ``j`` is input channel
    ``j`` of every reader (``Linear`` layers), and of nothing else (the caller guarantees it: that is
    what keeps the function unchanged). The readers' input maxima are recorded on ``calibration_data``.
    """
    alpha = check_alpha(alpha)
    amax: dict[str, torch.Tensor] = {}

    def recorder(name: str):
        def record(module: nn.Module, args: tuple) -> None:
            x = args[0].detach().abs().reshape(-1, args[0].shape[-1]).amax(0).float()
            amax[name] = torch.maximum(amax[name], x) if name in amax else x
        return record

    handles = [model.get_submodule(readers[0]).register_forward_pre_hook(recorder(p)) for p, readers in pairs.items()]
    try:
        with torch.no_grad():
            for batch in inputs.iter_batches(calibration_data, 64, model):
                inputs.call(model, batch)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        for producer_name, reader_names in pairs.items():
            producer = model.get_submodule(producer_name)
            readers = [model.get_submodule(n) for n in reader_names]
            wmax = torch.stack([r.weight.detach().abs().amax(0).float() for r in readers]).amax(0)
            scale = torch.from_numpy(smoothing_scales(amax[producer_name].cpu().numpy(), wmax.cpu().numpy(), alpha))
            scale = scale.to(producer.weight.device)
            if isinstance(producer, nn.Linear):
                producer.weight.div_(scale[:, None].to(producer.weight.dtype))
            else:
                producer.weight.div_(scale.to(producer.weight.dtype))
            if producer.bias is not None:
                producer.bias.div_(scale.to(producer.bias.dtype))
            for r in readers:
                r.weight.mul_(scale.to(r.weight.dtype))
    return model


@register("transform", "torch", SmoothQuant)
def smooth_quant(model: nn.Module, config: SmoothQuant, *, calibration_data: Any = None) -> nn.Module:
    """A smoothed copy of ``model`` (see the module docstring); ``model`` is never changed."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_calibration(calibration_data)
    pairs = layernorm_pairs(model)
    out = copy.deepcopy(model).eval()
    if pairs:
        return smooth_pairs(out, pairs, calibration_data, config.alpha)
    warn_no_pairs(type(model).__name__, "LayerNorm", "Linear")
    return out


__all__ = ["layernorm_pairs", "smooth_pairs", "smooth_quant"]
