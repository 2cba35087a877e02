"""Calibrated layer-by-layer compression of torch models: ``GPTQ``/``AWQ`` (quantize), ``Wanda``/``SparseGPT`` (prune).

The ``nn.Linear`` layers are taken in the order the model calls them on ``calibration_data``
(layers that read the same input tensor, such as an attention block's query, key and value, form
one step). For each step the calibration batches run through the model as compressed so far,
forward pre-hooks collect each layer's ``XᵀX`` (and, for AWQ, a sample of input rows), the forward
stops once the step's layers have been called, and the layers are compressed by the shared math
in :mod:`compresslib.core.layerwise`. So each layer sees the outputs of the ones already
compressed (GPTQ's "sequential" mode), one partial forward per step, on any model graph: no block
structure or attribute names are assumed.

Quantized layers become :class:`~compresslib.torch.layers.WeightOnlyLinear` (packed codes, group
scales, AWQ's input scales; ``cl.save`` stores them as they are); pruned layers stay ``nn.Linear``
with exact zeros (``cl.save`` packs them sparse). Hugging Face ``Conv1D`` layers (GPT-2's attention and
MLP projections, weight stored ``(in, out)``) are handled as the Linear layers they are; quantized, they
become ``WeightOnlyLinear``. Layers left float, each named in one warning: a
Linear whose fan-in the group size (or ``m``) does not fit, one the model never calls through its
``forward`` (``nn.MultiheadAttention``'s ``out_proj``, read as a tensor), and weight-holding layers
of other kinds (``nn.MultiheadAttention``'s packed ``in_proj_weight``, convolutions).
A model with no Linear layer the forward calls is refused before any work, naming what it has.

Calibration runs with autograd on (inputs detached), because PyTorch's fused inference path of
``nn.TransformerEncoderLayer`` bypasses the Linear modules, and their hooks, under ``no_grad``.

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4)).eval()
    >>> x = torch.randn(256, 16)
    >>> q = cl.quantize(m, cl.GPTQ(bits=4, group_size=16), calibration_data=x)
    >>> with torch.no_grad():
    ...     error = float((q(x) - m(x)).norm() / m(x).norm())
    >>> type(q[0]).__name__, q[0].bits, error < 0.1
    ('WeightOnlyLinear', 4, True)
    >>> p = cl.prune(m, cl.SparseGPT(n=2, m=4), calibration_data=x)
    >>> int((p[0].weight == 0).sum()), tuple(p[0].weight.shape)
    (256, (32, 16))
"""
from __future__ import annotations

import copy
import warnings
from typing import Any, Iterable, Optional

import numpy as np
import torch
from torch import nn

from compresslib.configs import AWQ, GPTQ, SparseGPT, Wanda
from compresslib.core import layerwise
from compresslib.core.gptq import HessianAccumulator
from compresslib.registry import Tuning, register, register_tuner
from compresslib.torch import inputs
from compresslib.torch.layers import WeightOnlyLinear

BATCH = 32
_QUIET = (nn.LayerNorm, nn.Embedding, nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, nn.RMSNorm)


class _Stop(Exception):
    """Raised by a hook once the step's layers have seen their inputs: the rest of the forward is skipped."""


def is_conv1d(module: nn.Module) -> bool:
    """Hugging Face's ``Conv1D`` (GPT-2's projections): a Linear layer whose weight is stored ``(in, out)``."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf") and \
        isinstance(module._parameters.get("weight"), nn.Parameter) and module.weight.dim() == 2


def linear_layers(model: nn.Module) -> dict[str, nn.Module]:
    """``{name: layer}`` of the plain ``nn.Linear`` layers (subclasses that only rename it included) and
    Hugging Face ``Conv1D`` layers."""
    return {n: m for n, m in model.named_modules()
            if (isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward
                and isinstance(m._parameters.get("weight"), nn.Parameter)) or is_conv1d(m)}


def _in_features(layer: nn.Module) -> int:
    return layer.weight.shape[0] if is_conv1d(layer) else layer.in_features


def _as_linear(layer: nn.Module) -> nn.Linear:
    """``layer`` itself, or an ``nn.Linear`` computing what a ``Conv1D`` computes (weights transposed)."""
    if not is_conv1d(layer):
        return layer
    lin = nn.Linear(layer.weight.shape[0], layer.weight.shape[1], bias=layer.bias is not None,
                    device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        lin.weight.copy_(layer.weight.t())
        if layer.bias is not None:
            lin.bias.copy_(layer.bias)
    return lin


def _others(model: nn.Module, linear: dict) -> list[str]:
    """Layers with a weight matrix that are not handled (named in the warning)."""
    out = []
    for name, m in model.named_modules():
        if name in linear or isinstance(m, _QUIET):
            continue
        own = [p for p in m._parameters.values() if p is not None and p.dim() >= 2]
        if own:
            out.append(f"{name} ({type(m).__name__})")
    return out


def _run(model: nn.Module, data: Any) -> None:
    """One pass of ``data`` through ``model`` (autograd on, see the module docstring); a hook may stop it."""
    with torch.enable_grad():
        for batch in inputs.iter_batches(data, BATCH, model):
            try:
                inputs.call(model, batch)
            except _Stop:
                pass


def _rows(x: torch.Tensor) -> torch.Tensor:
    return x.detach().reshape(-1, x.shape[-1]).float()


def call_order(model: nn.Module, layers: dict[str, nn.Linear], data: Any) -> tuple[list[list[str]], dict, dict]:
    """Steps (lists of layer names in call order, grouped by shared input), rows and calls per batch per layer."""
    first: dict[str, tuple] = {}
    rows: dict[str, int] = {n: 0 for n in layers}
    calls: dict[str, int] = {n: 0 for n in layers}
    batches = [0]

    def hook(name: str):
        def record(module: nn.Module, args: tuple) -> None:
            x = args[0]
            if name not in first:
                first[name] = (len(first), x.data_ptr(), tuple(x.shape))
            if batches[0] == 1:
                calls[name] += 1
            rows[name] += x.numel() // x.shape[-1]
        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in layers.items()]
    try:
        with torch.enable_grad():
            for batch in inputs.iter_batches(data, BATCH, model):
                batches[0] += 1
                inputs.call(model, batch)
    finally:
        for h in handles:
            h.remove()
    steps: dict[tuple, list[str]] = {}
    for name in sorted(first, key=lambda n: first[n][0]):
        steps.setdefault(first[name][1:], []).append(name)
    return list(steps.values()), rows, calls


def _collect(model: nn.Module, names: list[str], data: Any, config: Any, rows: dict, calls: dict) -> tuple:
    """Accumulators (and AWQ's row samples) for the layers ``names``, from one (partial) pass."""
    accs = {n: HessianAccumulator(_in_features(model.get_submodule(n))) for n in names}
    samples: dict[str, list] = {n: [] for n in names}
    seen = {n: 0 for n in names}
    want = sum(calls[n] for n in names)

    def hook(name: str):
        stride = max(1, -(-rows[name] // layerwise.MAX_ROWS))

        def record(module: nn.Module, args: tuple) -> None:
            x = _rows(args[0])
            s = x.t() @ x
            acc = accs[name]
            acc.sum += s.double().cpu().numpy()
            acc.abs_sum += x.abs().sum(0).double().cpu().numpy()
            acc.n += len(x)
            if layerwise.needs_rows(config):
                samples[name].append(x[::stride].cpu().numpy())
            seen[name] += 1
            if sum(seen.values()) >= want:
                for k in seen:
                    seen[k] = 0
                raise _Stop
        return record

    handles = [model.get_submodule(n).register_forward_pre_hook(hook(n)) for n in names]
    try:
        _run(model, data)
    finally:
        for h in handles:
            h.remove()
    return accs, {n: np.concatenate(s) if s else None for n, s in samples.items()}


def _replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def compress_sequentially(model: nn.Module, config: Any, data: Any, ignored: Iterable[str] = ()) -> nn.Module:
    """Compress ``model``'s Linear layers in place, step by step (see the module docstring); return it."""
    technique = type(config).__name__
    if data is None:
        raise layerwise.missing_calibration(technique)
    ignored = set(ignored)
    layers = {n: m for n, m in linear_layers(model).items() if n not in ignored}
    flags = {p: p.requires_grad for p in model.parameters()}
    for p in flags:  # autograd on for the calibration passes (the fused encoder path skips the hooks otherwise)
        p.requires_grad_(p.is_floating_point())
    try:
        return _sequential(model, config, data, layers, technique)
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)


def _sequential(model: nn.Module, config: Any, data: Any, layers: dict, technique: str) -> nn.Module:
    steps, rows, calls = call_order(model, layers, data)
    if not steps:
        kinds = sorted({type(m).__name__ for m in model.modules() if any(True for _ in m.parameters(False))})
        raise ValueError(f"model: {technique} compresses nn.Linear layers called by the model's forward; "
                         f"{type(model).__name__} has none (its layers with weights: {', '.join(kinds) or 'none'})")
    skipped = [f"{n} (nn.Linear never called through forward)" for n in layers if rows[n] == 0]
    skipped += _others(model, layers)
    todo, unfit = layerwise.plan(config, steps, lambda n: _in_features(layers[n]))
    skipped += unfit
    if skipped:
        warnings.warn(f"{technique}: layers left float: {', '.join(skipped)}", UserWarning, stacklevel=4)
    for step in todo:
        accs, samples = _collect(model, step, data, config, rows, calls)
        for n in step:
            layer = _as_linear(model.get_submodule(n))
            w = layer.weight.detach().float().cpu().numpy()
            result = layerwise.compress_layer(config, w, accs[n], samples[n])
            if result.weight is not None:
                new = torch.from_numpy(result.weight).to(layer.weight.dtype)
                target = model.get_submodule(n).weight
                with torch.no_grad():
                    target.copy_(new.t() if is_conv1d(model.get_submodule(n)) else new)
            else:
                _replace(model, n, WeightOnlyLinear.from_codes(layer, result.q, result.scale, result.bits,
                                                               result.group_size, result.input_scale))
    return model


def _check_model(model: Any) -> nn.Module:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return model


@register("quantize", "torch", GPTQ, AWQ)
def quantize_calibrated(model: nn.Module, config: Any, *, calibration_data: Any = None) -> nn.Module:
    """A copy of ``model`` with its Linear layers quantized by GPTQ or AWQ (see the module docstring)."""
    _check_model(model)
    if calibration_data is None:
        raise layerwise.missing_calibration(type(config).__name__)
    return compress_sequentially(copy.deepcopy(model).eval(), config, calibration_data)


@register("prune", "torch", Wanda, SparseGPT)
def prune_calibrated(model: nn.Module, config: Any, *, calibration_data: Any = None, example_input: Any = None,
                     ignored_layers: Iterable[str] = (), seed: int = 0) -> nn.Module:
    """A copy of ``model`` with its Linear layers pruned by Wanda or SparseGPT (exact zeros, plain weights).

    ``calibration_data`` (or, failing it, ``example_input``) feeds the statistics; ``ignored_layers``:
    module names left dense; ``seed`` is unused (every pruning config takes it).
    """
    _check_model(model)
    data = calibration_data if calibration_data is not None else example_input
    if data is None:
        raise layerwise.missing_calibration(type(config).__name__)
    names = dict(model.named_modules())
    unknown = sorted(set(ignored_layers) - set(names))
    if unknown:
        raise ValueError(f"ignored_layers: no module named {unknown} in {type(model).__name__}")
    return compress_sequentially(copy.deepcopy(model).eval(), config, data, ignored_layers)


def _zero_masked(model: nn.Module, masks: dict) -> None:
    with torch.no_grad():
        for name, mask in masks.items():
            w = model.get_submodule(name).weight
            w.masked_fill_(~mask.to(w.device), 0.0)


@register_tuner("torch", Wanda, SparseGPT)
def keep_zeros(model: nn.Module, config: Any) -> Tuning:
    """Fine-tuning after Wanda/SparseGPT: the zeros found (every Linear/Conv1D weight's) are put back after each
    optimiser step and in the result, so training cannot fill them (the masks are fixed, not recomputed)."""
    masks = {n: m.weight.detach() != 0 for n, m in linear_layers(model).items()}

    def finish(trained: nn.Module) -> nn.Module:
        out = copy.deepcopy(trained)
        _zero_masked(out, masks)
        return out.eval()

    return Tuning(model, [lambda trained, step: _zero_masked(trained, masks)], finish)


__all__ = ["keep_zeros", "is_conv1d", "linear_layers", "call_order", "compress_sequentially", "quantize_calibrated", "prune_calibrated"]
