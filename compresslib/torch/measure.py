"""Measure a PyTorch model: parameters, non-zeros, file bytes, MACs, latency, accuracy.

Example:
    >>> import torch
    >>> from compresslib.torch.measure import measure
    >>> r = measure(torch.nn.Sequential(torch.nn.Linear(4, 3)), example_input=torch.zeros(1, 4), latency=False)
    >>> r.params, r.macs
    (15, 12)
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from compresslib.core.measure import assemble, check_measure_args, conv_macs, dense_macs, file_sizes, rnn_macs
from compresslib.report import LayerStats, Report
from compresslib.torch import inputs, train


def _weight_tensors(module: nn.Module) -> dict[str, tuple[Optional[int], torch.Tensor]]:
    """The module's own (not its children's) weight tensors, float or packed-integer, each with the ``id`` of the
    parameter it is (None for a tensor computed here), so that a parameter held by several modules is seen as one.

    The originals of a parametrized weight (``weight_norm``'s ``g`` and ``v``) count as the module's own.
    """
    own = list(module.named_parameters(recurse=False))
    if parametrize.is_parametrized(module):
        own += [(f"{name}.{pn}", p) for name, plist in module.parametrizations.items()
                for pn, p in plist.named_parameters()]
    out = {n: (id(p), _plain_tensor(p.detach())) for n, p in own}
    if hasattr(module, "dequantized_weight"):  # compresslib's packed weight-only layers
        out["weight"] = (None, module.dequantized_weight().detach())
    # quantized modules keep weights in packed params, not in parameters() (a child module named weight is not one)
    weight = getattr(module, "weight", None) if not out else None
    if callable(weight) and not isinstance(weight, nn.Module):
        try:
            w = module.weight()
            out["weight"] = (None, w.dequantize() if w.is_quantized else w)
            b = module.bias() if callable(getattr(module, "bias", None)) else None
            if b is not None:
                out["bias"] = (None, b)
        except Exception:  # pragma: no cover - foreign module with a weight() method
            pass
    return out


def _plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor for counting: torchao's quantized tensor subclasses are dequantized."""
    if type(t) not in (torch.Tensor, nn.Parameter) and hasattr(t, "dequantize"):
        return t.dequantize()
    return t


def _layer_counts(model: nn.Module) -> tuple[dict[str, tuple[str, int, int]], int]:
    """``{layer: (kind, params, non-zeros)}`` counting each parameter once (at the first layer holding it), and
    how many parameters a later layer holds too (tied weights: an output layer reusing the embedding)."""
    counts, seen, shared = {}, set(), 0
    inner = {id(sub) for m in model.modules() if parametrize.is_parametrized(m)
             for sub in m.parametrizations.modules()}  # counted with the parametrized layer
    for name, module in model.named_modules():
        if id(module) in inner:
            continue
        tensors = _weight_tensors(module)
        if not tensors:
            continue
        fresh = [t for key, t in tensors.values() if key is None or key not in seen]
        shared += sum(t.numel() for key, t in tensors.values() if key is not None and key in seen)
        seen.update(key for key, _ in tensors.values() if key is not None)
        params = sum(t.numel() for t in fresh)
        nonzero = sum(int(torch.count_nonzero(t)) for t in fresh)
        counts[name] = (type(module).__name__, params, nonzero)
    return counts, shared


_RNN = (nn.LSTM, nn.GRU, nn.RNN)


def _formula_macs(module: nn.Module, args: tuple, output: Any) -> int:
    """MACs per sample of one call of a layer whose ops the flop counter cannot see (int8, recurrent)."""
    if isinstance(module, _RNN):
        x = args[0] if args else None
        if isinstance(x, nn.utils.rnn.PackedSequence):
            steps = int(x.batch_sizes.numel())
        elif isinstance(x, torch.Tensor):
            steps = int(x.shape[1 if module.batch_first and x.dim() == 3 else 0]) if x.dim() == 3 else int(x.shape[0])
        else:
            return 0
        return rnn_macs(next(k.__name__ for k in _RNN if isinstance(module, k)), steps, module.input_size, module.hidden_size, module.num_layers, module.bidirectional,
                        getattr(module, "proj_size", 0))
    first = inputs.flatten(output)
    per_sample = first[0][0].numel() if first and first[0].dim() > 0 else 0
    kind = type(module).__name__
    if "Conv" in kind and hasattr(module, "kernel_size") and hasattr(module, "in_channels"):
        return conv_macs(per_sample, module.in_channels // module.groups, int(np.prod(module.kernel_size)))
    if "Linear" in kind and hasattr(module, "in_features"):
        return dense_macs(per_sample, module.in_features)
    return 0


def macs_by_layer(model: nn.Module, example: Any) -> dict[str, int]:
    """MACs per sample of each module, from ``torch.utils.flop_counter`` (every aten op, functional calls
    included) run on one row of ``example``; modules whose ops it cannot see (torch.ao int8 layers, LSTM's
    fused kernel) are counted by formula. A module's row holds the MACs of its own code, not its children's.

    Example:
        >>> m = nn.Sequential(nn.Linear(4, 3), nn.LSTM(3, 5))
        >>> macs_by_layer(m, torch.zeros(2, 4))
        {'0': 12, '1': 160}
    """
    from torch.utils.flop_counter import FlopCounterMode

    one = inputs.take(example, 0, 1)
    fallback: dict[str, int] = {}

    def hook(name):
        def fn(module, args, output):
            fallback[name] = fallback.get(name, 0) + _formula_macs(module, args, output)
        return fn

    named = list(model.named_modules())
    handles = [m.register_forward_hook(hook(n)) for n, m in named if not list(m.children())]
    counter = FlopCounterMode(display=False)
    try:
        # with gradients enabled: inference fast paths (fused transformer layers) bypass the counted ops
        with counter, torch.enable_grad():
            inputs.call(model, one)
    finally:
        for h in handles:
            h.remove()
    flops = {k: sum(v.values()) for k, v in counter.get_flop_counts().items()}
    root = type(model).__name__
    counted = {n: flops.get(f"{root}.{n}" if n else root, 0) // 2 for n, _ in named}
    # a module's own MACs: its count less those of the nearest counted modules inside it (a ModuleList is never
    # called, so the layers in it are subtracted from the module that holds the list)
    own = dict(counted)
    for n in (n for n, _ in named if n and f"{root}.{n}" in flops):
        parts = n.split(".")
        holder = next((".".join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                       if f"{root}.{'.'.join(parts[:i])}" in flops), "")
        own[holder] = own.get(holder, 0) - counted[n]
    macs: dict[str, int] = {}
    for n, m in named:
        mine = own[n]
        if not list(m.children()) and mine == 0:
            mine = fallback.get(n, 0)
        if mine > 0:
            macs[n] = mine
    return macs


def native_file_bytes(model: nn.Module) -> tuple[int, int, str]:
    """Bytes of ``torch.save(model.state_dict())`` written to disk, and of it gzipped."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        torch.save(model.state_dict(), path)
        size, gz = file_sizes(path)
    return size, gz, "state_dict .pt"


def make_timer(model: nn.Module, example: Any):
    """``timer(runs, warmup) -> milliseconds`` for one model and one batch (the Keras twin traces once).

    Example:
        >>> m = nn.Linear(4, 2)
        >>> timer = make_timer(m, torch.zeros(1, 4))
        >>> len(timer(3, 1))
        3
    """
    def timer(runs: int, warmup: int, max_seconds: float = 10.0) -> list[float]:
        return time_model(model, example, runs=runs, warmup=warmup, max_seconds=max_seconds)
    return timer


def time_model(model: nn.Module, example: Any, runs: int = 50, warmup: int = 10,
               max_seconds: float = 10.0) -> list[float]:
    """Wall-clock milliseconds of ``runs`` forward passes after ``warmup`` (CUDA synchronised).

    ``example``: one input batch (a tensor, a tuple of positional arguments or a dict of
    keyword arguments), already on the model's device.

    On CPU the warm-up starts with one pass at 8× the batch (at most 256 rows). glibc's
    ``malloc`` raises its mmap and trim thresholds after freeing a large block; until
    then it hands every activation buffer back to the OS after each pass and the next
    pass page-faults it in again. Measured: ResNet-8, 1 thread, batch 32 took 14.8 ms
    per pass before a larger pass had run in the process and 10.1 ms after, so
    whichever model a script timed first looked slow. The big pass puts every model
    in the same allocator state.
    """
    args, kwargs = inputs.to_call(example, model=model)
    tensors = [t for t in list(args) + list(kwargs.values()) if isinstance(t, torch.Tensor)]
    cuda = any(t.is_cuda for t in tensors)
    sync = (lambda: torch.cuda.synchronize(tensors[0].device)) if cuda else (lambda: None)
    times: list[float] = []
    with torch.inference_mode():
        n = inputs.leading_size(example) if tensors else 1
        repeat = max(1, min(8, 256 // max(1, n)))
        if not cuda and repeat > 1:
            big_args, big_kwargs = inputs.to_call(inputs.repeat(example, repeat), model=model)
            model(*big_args, **big_kwargs)
        for _ in range(warmup):
            model(*args, **kwargs)
        sync()
        budget_end = time.perf_counter() + max_seconds
        for _ in range(runs):
            t0 = time.perf_counter()
            model(*args, **kwargs)
            sync()
            times.append(1000 * (time.perf_counter() - t0))
            if time.perf_counter() > budget_end and len(times) >= 5:
                break
    return times


def _example_from(model: nn.Module, data: Any, example_input: Any, batch_size: int) -> Any:
    """The batch to time and count MACs on, on the model's device, floats in the model's dtype."""
    if example_input is not None:
        ex, arg = inputs.first_batch(example_input, batch_size, model, "example_input"), "example_input"
    elif data is not None:
        ex, arg = train.first_inputs(data, batch_size, model), "data"
    else:
        raise ValueError("measure needs data=(x, y) or example_input= to run a torch model")
    if isinstance(ex, (torch.Tensor, np.ndarray)) and ex.ndim < 1:
        raise ValueError(f"{arg} must have a batch dimension, got shape {tuple(ex.shape)}")
    args, kwargs = inputs.to_call(ex, inputs.model_device(model), inputs.float_dtype(model))
    return kwargs if kwargs else (args[0] if len(args) == 1 else args)


def measure(model: nn.Module, data: Any = None, example_input: Any = None, *, name: Optional[str] = None,
            batch_size: int = 32, runs: int = 50, warmup: int = 10, latency: bool = True) -> Report:
    """Measure ``model`` (see :func:`compresslib.measure`); its train/eval flags are left as they were.

    ``data``: ``(x, y)`` with ``x`` an array, a tensor or a dict/tuple of them, or an iterable of
    ``(x, y)`` batches (a DataLoader). ``example_input``: one batch in any form the model takes.
    Runtime models (:mod:`compresslib.deploy`) are measured by :func:`compresslib.deploy.measure`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    check_measure_args(batch_size)
    flags = {m: m.training for m in model.modules()}
    model.eval()
    try:
        example = _example_from(model, data, example_input, batch_size)
        try:
            macs = macs_by_layer(model, example)
        except (RuntimeError, ValueError, TypeError, IndexError, AttributeError, KeyError) as exc:
            arg = "example_input" if example_input is not None else "data"
            raise ValueError(f"{arg}: the model cannot run on {inputs.describe(example)}: "
                             f"{type(exc).__name__}: {exc}") from None
        counts, shared = _layer_counts(model)
        layers = [LayerStats(n, kind, p, nz, macs.get(n, 0)) for n, (kind, p, nz) in counts.items()]
        kinds = dict((n, type(m).__name__) for n, m in model.named_modules())
        layers += [LayerStats(n, kinds.get(n, ""), 0, 0, m) for n, m in macs.items() if n not in counts]
        return assemble(
            Report,
            framework="torch", name=name or type(model).__name__, layers=layers, native=native_file_bytes(model),
            device=str(inputs.model_device(model)), threads=torch.get_num_threads(),
            time=(lambda: time_model(model, example, runs=runs, warmup=warmup)) if latency else None,
            batch_size=inputs.leading_size(example),
            accuracy=(lambda: train.evaluate(model, data, per_sample=True)) if data is not None else None,
            shared_params=shared)
    finally:
        for m, flag in flags.items():
            m.training = flag


def perplexity(model: nn.Module, tokens: Any, batch_size: int = 16) -> float:
    """Perplexity of a causal LM on ``tokens`` ``(batch, length)``: ``exp`` of the mean next-token NLL.

    ``model(ids)`` must return logits ``(batch, length, vocab)`` (or an object with ``.logits``, as
    Hugging Face models return).

    Example:
        >>> import torch
        >>> class Uniform(torch.nn.Module):
        ...     def forward(self, ids):
        ...         return torch.zeros(*ids.shape, 7)
        >>> round(perplexity(Uniform(), torch.randint(0, 7, (3, 5))), 4)
        7.0
    """
    from compresslib.core.lm import check_tokens, nll_sum, perplexity_of

    ids = check_tokens(tokens.cpu().numpy() if isinstance(tokens, torch.Tensor) else tokens)
    device = inputs.model_device(model)

    def parts():
        with torch.inference_mode():
            for start in range(0, len(ids), batch_size):
                batch = ids[start:start + batch_size]
                out = model(torch.from_numpy(batch).to(device))
                logits = getattr(out, "logits", out)
                yield nll_sum(logits.float().cpu().numpy(), batch)

    return perplexity_of(parts())
