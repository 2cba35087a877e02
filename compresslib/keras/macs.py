"""Multiply-accumulates of a Keras 3 model, counted from the layer calls of one forward pass.

:func:`macs_by_call` runs the model once on an example row while every ``Layer.__call__``
is recorded (the patch is undone when the call returns), so it sees what the model really
runs: layers of nested models, layers called inside a subclassed model's ``call`` or a
custom layer, shared layers (counted at every call), and the real
sequence length of a model built with ``Input((None, ...))``. Layers with a formula are
counted whole and their inner calls are not looked at again: convolutions (incl. depthwise,
grouped, separable and transposed), ``Dense``, ``EinsumDense``, ``LSTM``/``GRU``/``SimpleRNN`` (per step
and gate, :func:`compresslib.core.measure.rnn_macs`), ``Bidirectional`` (both directions) and
``MultiHeadAttention`` (projections and both attention products), ``TimeDistributed`` (its
layer once per step). Element-wise layers count 0.

When the model cannot be run on the example, :func:`symbolic_macs` counts from the shapes
recorded in a functional graph instead.

Example:
    >>> import keras, numpy as np
    >>> i = keras.Input((None,), dtype="int32")
    >>> h = keras.layers.LSTM(16, name="lstm")(keras.layers.Embedding(100, 8)(i))
    >>> m = keras.Model(i, keras.layers.Dense(3, name="dense")(h))
    >>> counts = macs_by_call(m, np.zeros((2, 5), "int32"))
    >>> sorted((layer.name, n) for layer, n in counts.values())   # 5 steps · 4 gates · 16 · (8 + 16)
    [('dense', 48), ('lstm', 7680)]
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Optional

import keras
import numpy as np

from compresslib.core.measure import conv_macs, dense_macs, rnn_macs

_RNN = {"LSTM": "LSTM", "GRU": "GRU", "SimpleRNN": "RNN"}
_SEPARABLE = (keras.layers.SeparableConv1D, keras.layers.SeparableConv2D)
_TRANSPOSED = (keras.layers.Conv1DTranspose, keras.layers.Conv2DTranspose, keras.layers.Conv3DTranspose)
_FORMULA = _SEPARABLE + _TRANSPOSED + (
    keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.DepthwiseConv1D,
    keras.layers.DepthwiseConv2D, keras.layers.Dense, keras.layers.EinsumDense, keras.layers.MultiHeadAttention,
    keras.layers.Bidirectional, keras.layers.TimeDistributed)


def _counted(layer: Any) -> bool:
    return isinstance(layer, _FORMULA) or type(layer).__name__ in _RNN


def _shape(t: Any) -> Optional[tuple]:
    if isinstance(t, (list, tuple)):
        t = t[0] if t else None
    if t is None or not hasattr(t, "shape"):
        return None
    return tuple(t.shape)


def _rnn(layer: Any, in_shape: tuple) -> int:
    kind = _RNN.get(type(layer).__name__)
    if kind is None or len(in_shape) < 3 or in_shape[1] is None:
        return 0
    return rnn_macs(kind, int(in_shape[1]), int(in_shape[-1]), int(layer.units))


def _einsum(layer: Any, out_elements: int) -> int:
    """Output elements × the kernel dimensions the equation sums over."""
    lhs, out = layer.equation.split("->")
    kernel = lhs.split(",")[1]
    dims = dict(zip(kernel, tuple(layer.kernel.shape)))
    return out_elements * int(np.prod([n for k, n in dims.items() if k not in out] or [1]))


def _attention(layer: Any, q: tuple, v: tuple, k: Optional[tuple]) -> int:
    """Q/K/V and output projections plus the two attention products, per sample."""
    k = k or v
    if any(d is None for d in q[1:] + v[1:] + k[1:]):
        return 0
    tq, dq = int(np.prod(q[1:-1])), int(q[-1])
    tk, dk, dv = int(np.prod(v[1:-1])), int(k[-1]), int(v[-1])
    h, kd = layer.num_heads, layer.key_dim
    vd = layer.value_dim or kd
    out_dim = dq if layer._output_shape is None else int(np.prod(layer._output_shape))
    return tq * dq * h * kd + tk * dk * h * kd + tk * dv * h * vd + \
        h * tq * tk * kd + h * tq * tk * vd + tq * h * vd * out_dim


def layer_macs(layer: Any, in_shape: tuple, out_shape: tuple, extra: Optional[dict] = None) -> int:
    """MACs of one call of ``layer`` for *one sample*, from its input and output shapes (batch first).

    ``extra``: ``{"value": shape, "key": shape}`` for attention layers.
    """
    per_sample = int(np.prod(out_shape[1:]))
    last = getattr(layer, "data_format", "channels_last") == "channels_last"
    channels = int(in_shape[-1] if last else in_shape[1]) if len(in_shape) > 1 else 1
    if isinstance(layer, _SEPARABLE):  # depthwise (depth_multiplier per channel) then a 1×1 pointwise convolution
        positions = per_sample // int(layer.filters)
        middle = channels * int(layer.depth_multiplier)
        return conv_macs(positions * middle, 1, int(np.prod(layer.kernel_size))) + conv_macs(per_sample, middle, 1)
    if isinstance(layer, _TRANSPOSED):  # every input element is spread over kernel × filters outputs
        positions = int(np.prod(in_shape[1:])) // channels
        return conv_macs(positions * channels, int(layer.filters) // getattr(layer, "groups", 1),
                         int(np.prod(layer.kernel_size)))
    if isinstance(layer, (keras.layers.DepthwiseConv1D, keras.layers.DepthwiseConv2D)):
        return conv_macs(per_sample, 1, int(np.prod(layer.kernel_size)))
    if isinstance(layer, (keras.layers.Conv1D, keras.layers.Conv2D, keras.layers.Conv3D)):
        channels = in_shape[-1] if layer.data_format == "channels_last" else in_shape[1]
        return conv_macs(per_sample, int(channels) // layer.groups, int(np.prod(layer.kernel_size)))
    if isinstance(layer, keras.layers.Dense):
        return dense_macs(per_sample, int(in_shape[-1]))
    if isinstance(layer, keras.layers.EinsumDense):
        return _einsum(layer, per_sample)
    if isinstance(layer, keras.layers.TimeDistributed):  # the wrapped layer once per step (it calls layer.call)
        steps = int(in_shape[1] or 1)
        return steps * layer_macs(layer.layer, (1,) + tuple(in_shape[2:]), (1,) + tuple(out_shape[2:]), extra)
    if isinstance(layer, keras.layers.Bidirectional):
        return _rnn(layer.forward_layer, in_shape) + _rnn(layer.backward_layer, in_shape)
    if isinstance(layer, keras.layers.MultiHeadAttention):
        extra = extra or {}
        return _attention(layer, in_shape, extra.get("value") or in_shape, extra.get("key"))
    return _rnn(layer, in_shape)


@contextmanager
def _recording(calls: list) -> Iterator[None]:
    """Record ``(layer, in_shape, out_shape, extra)`` for each outermost call of a counted layer."""
    layer_cls = keras.layers.Layer
    original = layer_cls.__call__
    inside = [0]

    def call(self, *args, **kwargs):
        if inside[0] or not _counted(self):
            return original(self, *args, **kwargs)
        inside[0] += 1
        try:
            out = original(self, *args, **kwargs)
        finally:
            inside[0] -= 1
        first = args[0] if args else kwargs.get("inputs", kwargs.get("query", kwargs.get("sequences")))
        extra = {"value": _shape(args[1] if len(args) > 1 else kwargs.get("value")),
                 "key": _shape(args[2] if len(args) > 2 else kwargs.get("key"))}
        calls.append((self, _shape(first), _shape(out), extra))
        return out

    layer_cls.__call__ = call
    try:
        yield
    finally:
        layer_cls.__call__ = original


def macs_by_call(model: Any, example: Any) -> dict[int, tuple[Any, int]]:
    """``{id(layer): (layer, MACs per sample)}`` from one forward pass of ``model`` on ``example``.

    Shared layers are counted at every call. Raises whatever the model raises on the example.
    """
    batch = np.asarray(example)[:1]
    calls: list = []
    with _recording(calls):
        model(batch, training=False)
    out: dict[int, tuple[Any, int]] = {}
    for layer, in_shape, out_shape, extra in calls:
        if in_shape is None or out_shape is None:
            continue
        n = int(in_shape[0] or 1)  # inner calls of TimeDistributed see batch × time rows
        macs = layer_macs(layer, in_shape, out_shape, extra) * n
        prev = out.get(id(layer), (layer, 0))[1]
        out[id(layer)] = (layer, prev + macs)
    return out


def symbolic_macs(layer: Any, steps: Optional[int] = None) -> int:
    """MACs per sample from the shapes a functional graph recorded for ``layer`` (0 if they are unknown)."""
    try:
        out_shape, in_shape = _shape(layer.output), _shape(layer.input)
    except (AttributeError, ValueError, TypeError):
        return 0
    if in_shape is None or out_shape is None:
        return 0

    def known(shape: tuple) -> tuple:
        dims = [1] + list(shape[1:])
        if len(dims) > 1 and dims[1] is None and steps is not None:
            dims[1] = steps
        return tuple(1 if d is None else int(d) for d in dims)

    extra = None
    if isinstance(layer, keras.layers.MultiHeadAttention):
        shapes = getattr(layer, "_build_shapes_dict", None) or {}
        if shapes.get("query_shape") is None or shapes.get("value_shape") is None:
            return 0
        in_shape = known(tuple(shapes["query_shape"]))
        extra = {"value": known(tuple(shapes["value_shape"])),
                 "key": known(tuple(shapes["key_shape"])) if shapes.get("key_shape") else None}
        return layer_macs(layer, in_shape, in_shape, extra)
    return layer_macs(layer, known(in_shape), known(out_shape), extra)


__all__ = ["macs_by_call", "symbolic_macs", "layer_macs"]
