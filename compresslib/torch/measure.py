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

from compresslib.core.measure import conv_macs, dense_macs, file_sizes, latency_stats, load_average
from compresslib.report import LayerStats, Report
from compresslib.torch.train import evaluate, model_device


def _weight_tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's own (not its children's) weight tensors, float or packed-integer."""
    out = {n: _plain_tensor(p.detach()) for n, p in module.named_parameters(recurse=False)}
    if hasattr(module, "dequantized_weight"):  # compresslib's packed weight-only layers
        out["weight"] = module.dequantized_weight().detach()
    # quantized modules keep weights in packed params, not in parameters()
    if not out and hasattr(module, "weight") and callable(getattr(module, "weight")):
        try:
            w = module.weight()
            out["weight"] = w.dequantize() if w.is_quantized else w
            b = module.bias() if callable(getattr(module, "bias", None)) else None
            if b is not None:
                out["bias"] = b
        except Exception:  # pragma: no cover - foreign module with a weight() method
            pass
    return out


def _plain_tensor(t: torch.Tensor) -> torch.Tensor:
    """A plain tensor for counting: torchao's quantized tensor subclasses are dequantized."""
    if type(t) not in (torch.Tensor, nn.Parameter) and hasattr(t, "dequantize"):
        return t.dequantize()
    return t


def _layer_counts(model: nn.Module) -> dict[str, tuple[str, int, int]]:
    counts = {}
    for name, module in model.named_modules():
        tensors = _weight_tensors(module)
        if tensors:
            params = sum(t.numel() for t in tensors.values())
            nonzero = sum(int(torch.count_nonzero(t)) for t in tensors.values())
            counts[name] = (type(module).__name__, params, nonzero)
    return counts


def _macs_by_layer(model: nn.Module, example: torch.Tensor) -> dict[str, int]:
    macs: dict[str, int] = {}

    def hook(name):
        def fn(module, inputs, output):
            per_sample = output[0].numel() if isinstance(output, torch.Tensor) else 0
            kind = type(module).__name__
            if "Conv" in kind and hasattr(module, "kernel_size"):
                k = int(np.prod(module.kernel_size))
                macs[name] = macs.get(name, 0) + conv_macs(per_sample, module.in_channels // module.groups, k)
            elif "Linear" in kind and hasattr(module, "in_features"):
                macs[name] = macs.get(name, 0) + dense_macs(per_sample, module.in_features)
        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in model.named_modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            model(example[:1])
    finally:
        for h in handles:
            h.remove()
    return macs


def native_file_bytes(model: nn.Module) -> tuple[int, int, str]:
    """Bytes of ``torch.save(model.state_dict())`` written to disk, and of it gzipped."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.pt")
        torch.save(model.state_dict(), path)
        size, gz = file_sizes(path)
    return size, gz, "state_dict .pt"


def time_model(model: nn.Module, example: torch.Tensor, runs: int = 50, warmup: int = 10,
               max_seconds: float = 10.0) -> list[float]:
    """Wall-clock milliseconds of ``runs`` forward passes after ``warmup`` (CUDA synchronised).

    On CPU the warm-up starts with one pass at 8× the batch (at most 256 rows). glibc's
    ``malloc`` raises its mmap and trim thresholds after freeing a large block; until
    then it hands every activation buffer back to the OS after each pass and the next
    pass page-faults it in again. Measured: ResNet-8, 1 thread, batch 32 took 14.8 ms
    per pass before a larger pass had run in the process and 10.1 ms after, so
    whichever model a script timed first looked slow. The big pass puts every model
    in the same allocator state.
    """
    sync = (lambda: torch.cuda.synchronize(example.device)) if example.is_cuda else (lambda: None)
    times: list[float] = []
    with torch.inference_mode():
        repeat = max(1, min(8, 256 // max(1, example.shape[0])))
        if not example.is_cuda and repeat > 1:
            model(example.repeat(repeat, *([1] * (example.dim() - 1))))
        for _ in range(warmup):
            model(example)
        sync()
        budget_end = time.perf_counter() + max_seconds
        for _ in range(runs):
            t0 = time.perf_counter()
            model(example)
            sync()
            times.append(1000 * (time.perf_counter() - t0))
            if time.perf_counter() > budget_end and len(times) >= 5:
                break
    return times


def _example_from(model: nn.Module, data, example_input, batch_size: int) -> torch.Tensor:
    device = model_device(model)
    if example_input is not None:
        if not isinstance(example_input, (torch.Tensor, np.ndarray)):
            raise TypeError(f"example_input must be a torch.Tensor or numpy array, got {type(example_input).__name__}")
        ex = torch.as_tensor(np.asarray(example_input) if isinstance(example_input, np.ndarray) else example_input)
    elif data is not None:
        ex = torch.as_tensor(np.asarray(data[0][:batch_size]))
    else:
        raise ValueError("measure needs data=(x, y) or example_input= to run a torch model")
    if ex.ndim < 2:
        raise ValueError(f"example_input must have a batch dimension, got shape {tuple(ex.shape)}")
    if ex.is_floating_point():  # feed the model's own float type (float16/bfloat16 models)
        dtypes = [p.dtype for p in model.parameters() if p.is_floating_point()]
        ex = ex.to(dtypes[0] if dtypes else torch.float32)
    return ex.to(device)


def measure(model: nn.Module, data: Any = None, example_input: Any = None, *, name: Optional[str] = None,
            batch_size: int = 32, runs: int = 50, warmup: int = 10, latency: bool = True) -> Report:
    """Measure ``model`` (see :func:`compresslib.measure`); runtime models exported from torch too."""
    if getattr(model, "__compresslib_runtime__", None) and getattr(model, "__compresslib_framework__", None) == "torch":
        from compresslib.runtime import measure_runtime

        return measure_runtime(model, data, example_input, name=name, batch_size=batch_size, runs=runs,
                               warmup=warmup, latency=latency)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
        raise ValueError(f"data must be a pair (x, y) of arrays, got {type(data).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model.eval()
    example = _example_from(model, data, example_input, batch_size)
    try:
        macs = _macs_by_layer(model, example)
    except RuntimeError as exc:
        arg = "example_input" if example_input is not None else "data"
        raise ValueError(f"{arg}: the model cannot run on inputs of shape {tuple(example.shape)}: {exc}") from exc
    counts = _layer_counts(model)
    layers = [LayerStats(n, kind, p, nz, macs.get(n, 0)) for n, (kind, p, nz) in counts.items()]
    for n, m in macs.items():  # layers with MACs but no own weights (rare)
        if n not in counts:
            layers.append(LayerStats(n, "", 0, 0, m))
    size, gz, fmt = native_file_bytes(model)
    report = Report(
        name=name or type(model).__name__, framework="torch",
        params=sum(l.params for l in layers), nonzero_params=sum(l.nonzero_params for l in layers),
        file_bytes=size, gzip_bytes=gz, file_format=fmt, macs=sum(macs.values()), layers=layers,
        device=str(example.device), threads=torch.get_num_threads(),
    )
    if latency:
        times = time_model(model, example, runs=runs, warmup=warmup)
        report.latency_ms, report.latency_spread_ms = latency_stats(times)
        report.latency_runs, report.batch_size = len(times), int(example.shape[0])
        report.load_average = load_average()
    if data is not None:
        report.accuracy = evaluate(model, data)
    return report
