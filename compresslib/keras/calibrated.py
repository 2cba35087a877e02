"""Calibrated layer-by-layer compression of Keras models: ``GPTQ``/``AWQ`` (quantize), ``Wanda``/``SparseGPT`` (prune).

The same walk as ``compresslib.torch.calibrated``: the ``Dense`` and ``EinsumDense`` layers (also
inside ``MultiHeadAttention`` and nested models) are taken in the order the model calls them on
``calibration_data``, layers reading the same input tensor form one step, and for each step the
calibration batches run eagerly through the model as compressed so far while a wrapper around each
layer's ``call`` collects ``XᵀX`` (and AWQ's sample rows) and stops the forward once the step's
layers have run. The per-layer math is :mod:`compresslib.core.layerwise`, shared with torch.

An ``EinsumDense`` is handled when its summed kernel axes come first and are the input's last axes
(``MultiHeadAttention``'s query/key/value ``abc,cde->abde`` and output ``abcd,cde->abe``); others,
and weight-holding layers of other kinds, stay float, named in one warning.

What comes back: pruned kernels hold exact zeros (``cl.save`` packs them sparse, as for
``Magnitude``). Quantized kernels hold the dequantized values ``q · scale`` (exactly on the
``bits``-bit grid of each group; AWQ's ``/ s`` included) in float32: the Keras result computes what
the packed torch layers compute. Keras 3 has no layer for compresslib's symmetric group codes (its
own ``gptq``/``awq`` modes, built by ``model.quantize``, are asymmetric with zero points), so the
codes are kept on the layer and ``cl.save`` stores them packed, as torch does
(:mod:`compresslib.keras.packed_io`); ``cl.load`` gives the same float kernels back.

Example:
    >>> import keras, numpy as np, compresslib as cl
    >>> i = keras.Input((16,))
    >>> m = keras.Model(i, keras.layers.Dense(4)(keras.layers.Dense(32, activation="relu")(i)))
    >>> x = np.random.default_rng(0).normal(size=(256, 16)).astype("float32")
    >>> p = cl.prune(m, cl.Wanda(n=2, m=4), calibration_data=x)
    >>> int((p.layers[1].get_weights()[0] == 0).sum())
    256
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Optional

import keras
import numpy as np

from compresslib.configs import AWQ, GPTQ, SparseGPT, Wanda
from compresslib.core import layerwise
from compresslib.core.gptq import HessianAccumulator
from compresslib.keras import packed_io
from compresslib.keras.checks import check_model
from compresslib.keras.pruning import kernel_layout, kernel_output_major, prunable_layers
from compresslib.keras.rebuild import copy_model
from compresslib.registry import Tuning, register, register_tuner

BATCH = 32


class _Stop(Exception):
    """Raised inside a layer's call once the step's layers have seen their inputs."""


def summed_axes(layer: Any) -> Optional[int]:
    """How many trailing input axes a layer sums against its kernel (None: not handled)."""
    if type(layer).__name__ == "Dense":
        return 1
    lhs, out = layer.equation.split("->")
    inp, kernel = lhs.split(",")
    n = 0
    while n < len(kernel) and kernel[n] not in out:
        n += 1
    if n == 0 or any(c not in out for c in kernel[n:]) or inp[-n:] != kernel[:n] or "." in inp:
        return None
    return n


def linear_layers(model: Any) -> dict[str, Any]:
    """``{key: layer}`` of the Dense/EinsumDense layers handled, keyed as ``prunable_layers`` keys them."""
    return {k: l for k, l in prunable_layers(model, warn=False).items()
            if type(l).__name__ in ("Dense", "EinsumDense") and summed_axes(l) is not None}


def _batches(data: Any) -> list:
    """``calibration_data`` as a list of model inputs of at most :data:`BATCH` rows."""
    if isinstance(data, (list, tuple)) and data and all(np.ndim(d) >= 1 for d in data) and \
            len({len(d) for d in data}) == 1 and not np.isscalar(data[0]) and np.ndim(data[0]) >= 2:
        n = len(data[0])
        return [[np.asarray(d)[s:s + BATCH] for d in data] for s in range(0, n, BATCH)]
    if isinstance(data, dict):
        n = len(next(iter(data.values())))
        return [{k: np.asarray(v)[s:s + BATCH] for k, v in data.items()} for s in range(0, n, BATCH)]
    try:
        arr = np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"calibration_data must be an array, a list of arrays (one per input) or a dict of "
                        f"them, got {type(data).__name__}") from exc
    if arr.ndim < 2 or len(arr) == 0:
        raise ValueError(f"calibration_data must be a non-empty batch (N, ...), got shape {arr.shape}")
    return [arr[s:s + BATCH] for s in range(0, len(arr), BATCH)]


class _Wrapped:
    """Wrap ``layer.call`` on the instance with ``record(x)``; undone on exit."""

    def __init__(self, layers: dict[str, Any], record) -> None:
        self.layers, self.record = layers, record

    def __enter__(self) -> "_Wrapped":
        for key, layer in self.layers.items():
            original = layer.call

            def call(inputs, *args, _key=key, _original=original, **kwargs):
                self.record(_key, inputs)
                return _original(inputs, *args, **kwargs)

            object.__setattr__(layer, "call", call)
        return self

    def __exit__(self, *exc: Any) -> None:
        for layer in self.layers.values():
            if "call" in vars(layer):
                object.__delattr__(layer, "call")


def _rows(layer: Any, x: Any) -> np.ndarray:
    x = np.asarray(keras.ops.convert_to_numpy(x), np.float32)
    n = summed_axes(layer)
    return x.reshape(-1, int(np.prod(x.shape[-n:])))


def _run(model: Any, batches: list) -> None:
    for b in batches:
        try:
            model(b, training=False)
        except _Stop:
            pass


def call_order(model: Any, layers: dict[str, Any], data: Any) -> tuple[list[list[str]], dict, dict]:
    """Steps (keys in call order, grouped by shared input), rows and calls per batch per layer."""
    batches = _batches(data)
    first: dict[str, tuple] = {}
    rows = {k: 0 for k in layers}
    calls = {k: 0 for k in layers}
    count = [0]

    def record(key: str, x: Any) -> None:
        if key not in first:
            first[key] = (len(first), id(x), tuple(x.shape))
        if count[0] == 0:
            calls[key] += 1
        rows[key] += _rows(layers[key], x).shape[0]

    with _Wrapped(layers, record):
        for b in batches:
            model(b, training=False)
            count[0] += 1
    steps: dict[tuple, list[str]] = {}
    for key in sorted(first, key=lambda k: first[k][0]):
        steps.setdefault(first[key][1:], []).append(key)
    return list(steps.values()), rows, calls


def _collect(model: Any, layers: dict[str, Any], step: list[str], batches: list, config: Any, rows: dict,
             calls: dict) -> tuple:
    accs = {k: HessianAccumulator(kernel_output_major(layers[k]).shape[1]) for k in step}
    samples: dict[str, list] = {k: [] for k in step}
    seen = {k: 0 for k in step}
    want = sum(calls[k] for k in step)

    def record(key: str, x: Any) -> None:
        r = _rows(layers[key], x)
        accs[key].update(r)
        if layerwise.needs_rows(config):
            samples[key].append(r[::max(1, -(-rows[key] // layerwise.MAX_ROWS))])
        seen[key] += 1
        if sum(seen.values()) >= want:
            for k in seen:
                seen[k] = 0
            raise _Stop

    with _Wrapped({k: layers[k] for k in step}, record):
        _run(model, batches)
    return accs, {k: np.concatenate(s) if s else None for k, s in samples.items()}


def _others(model: Any, handled: dict) -> list[str]:
    ids = {id(l) for l in handled.values()}
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        kind = type(layer).__name__
        if id(layer) in ids or kind in ("LayerNormalization", "BatchNormalization", "Embedding",
                                        "GroupNormalization", "Normalization", "RMSNormalization"):
            continue
        own = [w for w in layer._trainable_variables + layer._non_trainable_variables if len(w.shape) >= 2]
        if own:
            out.append(f"{layer.name} ({kind})")
    return out


def compress_sequentially(model: Any, config: Any, data: Any, ignored: Iterable[str] = ()) -> Any:
    """Compress ``model``'s Dense/EinsumDense kernels in place, step by step; return it."""
    technique = type(config).__name__
    if data is None:
        raise layerwise.missing_calibration(technique)
    batches = _batches(data)
    ignored = set(ignored)
    layers = {k: l for k, l in linear_layers(model).items() if k not in ignored and l.name not in ignored}
    if not layers:
        raise ValueError(f"model: {technique} compresses Dense and EinsumDense layers; {model.name} has none "
                         "it can handle")
    steps, rows, calls = call_order(model, layers, data)
    skipped = [f"{k} (never called)" for k in layers if rows[k] == 0] + _others(model, layers)
    todo, unfit = layerwise.plan(config, steps, lambda k: kernel_output_major(layers[k]).shape[1])
    skipped += unfit
    if skipped:
        warnings.warn(f"{technique}: layers left float: {', '.join(skipped)}", UserWarning, stacklevel=4)
    for step in todo:
        accs, samples = _collect(model, layers, step, batches, config, rows, calls)
        for k in step:
            layer = layers[k]
            result = layerwise.compress_layer(config, kernel_output_major(layer), accs[k], samples[k])
            layer.kernel.assign(kernel_layout(layer, result.dequantize()).astype(np.float32))
            if result.q is not None:
                packed_io.remember(layer, result)  # cl.save stores the codes, not the floats
    return model


@register("quantize", "keras", GPTQ, AWQ)
def quantize_calibrated(model: Any, config: Any, *, calibration_data: Any = None) -> Any:
    """A copy of ``model`` whose Dense/EinsumDense kernels are GPTQ or AWQ quantized (see the module docstring)."""
    check_model(model)
    if calibration_data is None:
        raise layerwise.missing_calibration(type(config).__name__)
    return compress_sequentially(copy_model(model), config, calibration_data)


@register("prune", "keras", Wanda, SparseGPT)
def prune_calibrated(model: Any, config: Any, *, calibration_data: Any = None, example_input: Any = None,
                     ignored_layers: Iterable[str] = (), seed: int = 0) -> Any:
    """A copy of ``model`` with its Dense/EinsumDense kernels pruned by Wanda or SparseGPT (exact zeros)."""
    check_model(model)
    data = calibration_data if calibration_data is not None else example_input
    if data is None:
        raise layerwise.missing_calibration(type(config).__name__)
    return compress_sequentially(copy_model(model), config, data, ignored_layers)


class KeepZeros(keras.callbacks.Callback):
    """A callback that puts the zeros of every handled kernel (found when it was made) back after each batch."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.masks = {k: np.asarray(keras.ops.convert_to_numpy(l.kernel)) != 0 for k, l in linear_layers(model).items()}

    def apply(self, model: Any) -> None:
        layers = linear_layers(model)
        for key, mask in self.masks.items():
            kernel = layers[key].kernel
            kernel.assign(np.where(mask, keras.ops.convert_to_numpy(kernel), np.float32(0)))

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self.apply(self.model)


@register_tuner("keras", Wanda, SparseGPT)
def keep_zeros(model: Any, config: Any) -> Tuning:
    """Fine-tuning after Wanda/SparseGPT: the zeros found stay zeros (a :class:`KeepZeros` callback, and the result)."""
    callback = KeepZeros(model)

    def finish(trained: Any) -> Any:
        out = copy_model(trained)
        callback.apply(out)
        return out

    return Tuning(model, [callback], finish)


__all__ = ["KeepZeros", "keep_zeros", "linear_layers", "summed_axes", "call_order", "compress_sequentially", "quantize_calibrated", "prune_calibrated"]
