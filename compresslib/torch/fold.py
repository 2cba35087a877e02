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
from typing import Any

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


def _has_weight(module: nn.Module) -> bool:
    """A real weight Parameter (not a factored layer's computed ``.weight``)."""
    return isinstance(module._parameters.get("weight"), nn.Parameter)


def _pairs_run(model: nn.Module, example: Any) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Pairs read from one forward pass: a BN whose input tensor *is* the output of a Conv/Linear call,
    and that output feeds no other layer. (Functional uses of it are invisible here, so the caller
    checks the folded model's outputs.)"""
    from compresslib.torch import inputs

    names = {m: n for n, m in model.named_modules()}
    producer: dict[int, tuple[str, torch.Tensor]] = {}
    consumers: dict[int, int] = {}
    calls: dict[str, int] = {}
    bn_inputs: dict[str, int] = {}

    def hook(module, args, output):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        for a in args:  # only tensors a recorded layer produced (kept alive, so ids are unique)
            if isinstance(a, torch.Tensor) and producer.get(id(a), (None, None))[1] is a:
                consumers[id(a)] = consumers.get(id(a), 0) + 1
        if isinstance(module, _BN) and args and isinstance(args[0], torch.Tensor):
            bn_inputs[name] = id(args[0])
        if isinstance(module, _PRODUCERS) and _has_weight(module) and isinstance(output, torch.Tensor):
            producer.setdefault(id(output), (name, output))  # innermost layer first; keeps the tensor alive

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())
               or isinstance(m, (_BN, _PRODUCERS))]
    was = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            inputs.call(model, example)
    finally:
        for h in handles:
            h.remove()
        for m, flag in was.items():
            m.training = flag
    pairs, skipped = [], {}
    for bn, tid in bn_inputs.items():
        if tid not in producer:
            skipped[bn] = "its input is not a Conv/Linear output"
            continue
        layer = producer[tid][0]
        if consumers.get(tid, 0) != 1:
            skipped[bn] = f"{layer}'s output is also used elsewhere"
        elif calls.get(layer) != 1 or calls.get(bn) != 1:
            skipped[bn] = "the layer or the BatchNorm is called more than once"
        else:
            pairs.append((layer, bn))
    for name, m in model.named_modules():
        if isinstance(m, _BN) and name not in bn_inputs:
            skipped[name] = "not called by the model's forward"
    return pairs, skipped


def batchnorm_pairs(model: nn.Module, example_input: Any = None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``[(layer_name, bn_name), ...]`` that can be folded, and ``{bn_name: reason}`` for those that cannot.

    Read from the ``torch.fx`` graph; for a model fx cannot trace, from one forward pass on
    ``example_input`` (guessed from the first layer when None).
    """
    pairs, skipped, _ = _find_pairs(model, example_input)
    return pairs, skipped


def _find_pairs(model: nn.Module, example_input: Any) -> tuple[list, dict, Any]:
    from compresslib.torch import inputs

    try:
        return (*_pairs_fx(model), None)
    except Exception:  # noqa: BLE001  (fx cannot trace data-dependent control flow, dict inputs, …)
        example = (inputs.guess_example(model) if example_input is None
                   else inputs.first_batch(example_input, 2, model))
        return (*_pairs_run(model, example), example)


def _outputs(model: nn.Module, example: Any) -> list[torch.Tensor]:
    from compresslib.torch import inputs

    was = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            return inputs.flatten(inputs.call(model, example))
    finally:
        for m, flag in was.items():
            m.training = flag


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and torch.allclose(x.float(), y.float(), rtol=1e-4, atol=1e-5)
                                    for x, y in zip(a, b))


def _fold_checked(model: nn.Module, pairs: list, skipped: dict, example: Any) -> nn.Module:
    """Fold the pairs found from a forward pass, keeping each only while the outputs stay the same."""
    reference = _outputs(model, example)
    trial = copy.deepcopy(model)
    _fold_pairs(trial, pairs, skipped)
    if _same(reference, _outputs(trial, example)):
        return trial
    out = copy.deepcopy(model)
    for pair in pairs:
        attempt = copy.deepcopy(out)
        _fold_pairs(attempt, [pair], skipped)
        if _same(reference, _outputs(attempt, example)):
            out = attempt
        else:
            skipped[pair[1]] = f"folding it changed the outputs ({pair[0]}'s output is also used outside a layer)"
    return out


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def fold_batchnorm(model: nn.Module, *, example_input: Any = None) -> nn.Module:
    """A copy of ``model`` with every BatchNorm that follows a Conv/Linear folded into it.

    The folded BN modules are replaced by ``nn.Identity``; the conv/Linear gains
    a bias if it had none. Outputs equal the original's in eval mode (the BN's
    running statistics are used); the copy keeps the original's train/eval flag.

    ``example_input``: one batch, used only for models ``torch.fx`` cannot trace (the
    pairs are then read from a forward pass, and each fold is kept only if the
    model's outputs stay the same).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    pairs, skipped, example = _find_pairs(model, example_input)
    if example is None:
        out = copy.deepcopy(model)
        _fold_pairs(out, pairs, skipped)
    else:
        out = _fold_checked(model, pairs, skipped, example)
    if not pairs and not skipped:
        warnings.warn("fold_batchnorm: the model comes back unchanged: it has no BatchNorm layer", UserWarning,
                      stacklevel=2)
    if skipped:
        warnings.warn(f"fold_batchnorm: left {len(skipped)} BatchNorm layer(s) unfolded: "
                      + "; ".join(f"{n}: {why}" for n, why in skipped.items()), UserWarning, stacklevel=2)
    return out


def _fold_pairs(out: nn.Module, pairs: list[tuple[str, str]], skipped: dict[str, str]) -> None:
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
