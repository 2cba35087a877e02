"""Measure a Keras 3 model: parameters, non-zeros, file bytes, MACs, latency, accuracy.

Also accepts compresslib's model-like wrappers (e.g. a LiteRT int8 model)
that provide ``__compresslib_framework__ = "keras"``, ``save_native(path)``,
``__call__`` and, optionally, ``layer_stats()``.

Example:
    >>> import keras
    >>> from compresslib.keras.measure import measure
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    >>> r = measure(m, latency=False)
    >>> r.params, r.macs
    (15, 12)
"""
from __future__ import annotations

import os
import tempfile
import time
from typing import Any, Optional

import keras
import numpy as np

from compresslib.core.measure import assemble, check_measure_args, conv_macs, dense_macs, file_sizes, rnn_macs
from compresslib.keras.train import evaluate
from compresslib.report import LayerStats, Report

_NOT_PARAMETERS = ("moving_mean", "moving_variance", "seed_generator")


def is_parameter(variable) -> bool:
    """True for weights that count as parameters (BatchNorm running statistics and RNG state do not)."""
    path = getattr(variable, "path", getattr(variable, "name", ""))
    return not any(s in path for s in _NOT_PARAMETERS)


def _own_variables(layer) -> list:
    if isinstance(layer, keras.Model):
        return []
    return [v for v in layer.weights if is_parameter(v)]


def _shape(t) -> tuple:
    return tuple(1 if d is None else int(d) for d in t.shape)


def _known(shape: tuple, steps: Optional[int]) -> tuple:
    """A symbolic shape with the batch set to 1 and an unknown time axis (axis 1) set to ``steps``."""
    out = [1] + [d for d in shape[1:]]
    if len(out) > 1 and out[1] is None and steps is not None:
        out[1] = steps
    return tuple(1 if d is None else int(d) for d in out)


def _einsum_macs(layer, out_shape: tuple) -> int:
    """Output elements × the kernel dimensions the equation sums over."""
    lhs, out = layer.equation.split("->")
    kernel = lhs.split(",")[1]
    dims = dict(zip(kernel, tuple(layer.kernel.shape)))
    summed = int(np.prod([n for k, n in dims.items() if k not in out] or [1]))
    return int(np.prod(out_shape[1:])) * summed


def _layer_macs(layer, steps: Optional[int] = None) -> int:
    """MACs per sample of a layer from its symbolic input/output shapes (``steps``: the example's time axis)."""
    try:
        out_shape = _known(_shape_of(layer.output), steps)
        in_shape = _known(_shape_of(layer.input), steps)
    except (AttributeError, ValueError, TypeError):
        return 0
    per_sample = int(np.prod(out_shape[1:]))
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return conv_macs(per_sample, 1, int(np.prod(layer.kernel_size)))
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        channels = in_shape[-1] if layer.data_format == "channels_last" else in_shape[1]
        return conv_macs(per_sample, channels // layer.groups, int(np.prod(layer.kernel_size)))
    if isinstance(layer, keras.layers.Dense):
        return dense_macs(per_sample, in_shape[-1])
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum_macs(layer, out_shape)
    if isinstance(layer, keras.layers.Bidirectional):
        inner = layer.forward_layer
        return 2 * _rnn_macs(inner, in_shape)
    if isinstance(layer, (keras.layers.LSTM, keras.layers.GRU, keras.layers.SimpleRNN)):
        return _rnn_macs(layer, in_shape)
    if isinstance(layer, keras.layers.MultiHeadAttention):
        return _attention_macs(layer)
    return 0


def _shape_of(t) -> tuple:
    if isinstance(t, (list, tuple)):
        if not t:
            raise ValueError("no tensor")
        t = t[0]
    return tuple(t.shape)


def _rnn_macs(layer, in_shape: tuple) -> int:
    kind = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}[type(layer).__name__]
    return rnn_macs(kind, int(in_shape[1]), int(in_shape[-1]), int(layer.units))


def _attention_macs(layer) -> int:
    """Q/K/V and output projections plus the two attention products, per sample."""
    shapes = getattr(layer, "_build_shapes_dict", None) or {}
    q_shape, v_shape = shapes.get("query_shape"), shapes.get("value_shape")
    if q_shape is None or v_shape is None:
        return 0
    k_shape = shapes.get("key_shape") or v_shape
    if any(d is None for d in tuple(q_shape)[1:] + tuple(v_shape)[1:]):
        return 0
    tq, dq = int(np.prod(q_shape[1:-1])), int(q_shape[-1])
    tk, dk, dv = int(np.prod(v_shape[1:-1])), int(k_shape[-1]), int(v_shape[-1])
    h, kd = layer.num_heads, layer.key_dim
    vd = layer.value_dim or kd
    out_dim = dq if layer._output_shape is None else int(np.prod(layer._output_shape))
    return tq * dq * h * kd + tk * dk * h * kd + tk * dv * h * vd + \
        h * tq * tk * kd + h * tq * tk * vd + tq * h * vd * out_dim


def _flat_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def layer_stats(model, steps: Optional[int] = None) -> list[LayerStats]:
    """Per-layer parameters, non-zeros and MACs of a built Keras model.

    ``steps``: the length of the time axis for sequence models built with ``None`` there
    (the example's); recurrent and attention layers are counted per step.
    """
    if hasattr(model, "layer_stats"):
        return model.layer_stats()
    stats = []
    for layer in _flat_layers(model):
        variables = _own_variables(layer)
        arrays = [np.asarray(keras.ops.convert_to_numpy(v)) for v in variables]
        macs = _layer_macs(layer, steps)
        if arrays or macs:
            stats.append(LayerStats(layer.name, type(layer).__name__, sum(a.size for a in arrays),
                                    sum(int(np.count_nonzero(a)) for a in arrays), macs))
    return stats


def native_file_bytes(model) -> tuple[int, int, str]:
    """Bytes of the model's native file (``.keras``, or the wrapper's own format) and of it gzipped."""
    with tempfile.TemporaryDirectory() as tmp:
        if hasattr(model, "save_native"):
            path, fmt = model.save_native(tmp)
        else:
            path, fmt = os.path.join(tmp, "model.keras"), ".keras"
            model.save(path)
        size, gz = file_sizes(path)
    return size, gz, fmt


def _call_fn(model):
    """A fast inference callable: a traced tf.function on the TensorFlow backend, else ``__call__``."""
    if isinstance(model, keras.Model) and keras.backend.backend() == "torch":  # no autograd; GPU tensors to host
        import torch

        def call(x):
            with torch.no_grad():
                return keras.ops.convert_to_numpy(model(x, training=False))
        return call
    if not isinstance(model, keras.Model) or keras.backend.backend() != "tensorflow":
        return lambda x: np.asarray(model(x))
    import tensorflow as tf

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    return lambda x: fn(x).numpy()


def time_model(model, example: np.ndarray, runs: int = 50, warmup: int = 10, max_seconds: float = 10.0) -> list[float]:
    """Wall-clock milliseconds of ``runs`` inference calls after ``warmup`` (result copied to host)."""
    call = _call_fn(model)
    if isinstance(model, keras.Model) and keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        example = tf.constant(example)
    elif isinstance(model, keras.Model) and keras.backend.backend() == "torch":
        example = keras.ops.convert_to_tensor(example)  # on Keras's torch device once, not a copy per call
    for _ in range(warmup):
        call(example)
    times: list[float] = []
    budget_end = time.perf_counter() + max_seconds
    for _ in range(runs):
        t0 = time.perf_counter()
        call(example)
        times.append(1000 * (time.perf_counter() - t0))
        if time.perf_counter() > budget_end and len(times) >= 5:
            break
    return times


def _threads() -> int:
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.config.threading.get_intra_op_parallelism_threads() or (os.cpu_count() or 1)
    return os.cpu_count() or 1


def _device(model) -> str:
    variables = getattr(model, "weights", None) or []
    for v in variables:
        dev = str(getattr(getattr(v, "value", v), "device", "") or "").upper()  # TF: '/GPU:0'; torch: 'cuda:0'
        return "cuda" if "GPU" in dev or "CUDA" in dev else "cpu"
    return getattr(model, "device", "cpu")


def _example_from(model, data, example_input, batch_size: int) -> np.ndarray:
    if example_input is not None:
        ex = np.asarray(example_input)
        arg = "example_input"
    elif data is not None:
        ex = np.asarray(data[0][:batch_size])
        arg = "data"
    else:
        shape = getattr(model, "input_shape", None)
        if shape is None or not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
            raise ValueError("measure needs data=(x, y) or example_input= for a model without a fixed input shape")
        ex = np.zeros((batch_size,) + tuple(shape[1:]), dtype=np.float32)
        arg = "model"
    expected = getattr(model, "input_shape", None)
    if isinstance(expected, tuple) and ex.ndim >= 1:
        if len(expected) != ex.ndim or any(e is not None and e != g for e, g in zip(expected[1:], ex.shape[1:])):
            raise ValueError(f"{arg}: the model expects inputs of shape {expected}, got {ex.shape}")
    return ex.astype(np.float32) if ex.dtype.kind == "f" else ex


def measure(model, data: Any = None, example_input: Any = None, *, name: Optional[str] = None,
            batch_size: int = 32, runs: int = 50, warmup: int = 10, latency: bool = True) -> Report:
    """Measure ``model`` (see :func:`compresslib.measure`)."""
    if not (isinstance(model, keras.Model) or getattr(model, "__compresslib_framework__", None) == "keras"):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
        raise ValueError(f"data must be a pair (x, y) of arrays, got {type(data).__name__}")
    check_measure_args(batch_size)
    example = _example_from(model, data, example_input, batch_size)
    steps = int(example.shape[1]) if example.ndim >= 2 else None
    return assemble(
        framework="keras", name=name or getattr(model, "name", type(model).__name__),
        layers=layer_stats(model, steps), native=native_file_bytes(model), device=_device(model),
        threads=_threads(), time=(lambda: time_model(model, example, runs=runs, warmup=warmup)) if latency else None,
        batch_size=int(example.shape[0]), accuracy=(lambda: evaluate(model, data)) if data is not None else None)
