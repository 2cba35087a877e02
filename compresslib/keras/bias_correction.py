"""Bias correction for Keras ``Int8Static`` (LiteRT): the mean error of rounding the weights, removed first.

LiteRT's converter calibrates and rounds on its own, inside the flatbuffer, so the
sequential empirical correction of the PyTorch side (:mod:`compresslib.torch.bias_correction`,
which reads each int8 layer's output) has no place to run here. What can be done before
conversion is the *analytic* part (Nagel et al., *Data-Free Quantization*, 2019, sec. 4.2):
the converter rounds each Conv2D/Dense/DepthwiseConv2D kernel to int8, per output channel
and symmetric (scale = max|w|/127, levels −127..127); the mean output error that rounding
causes is ``E[x]·(W_q − W)``, linear in the mean input, so a copy of the model (BatchNorm
folded first, as the converter would) gets each bias lowered by it. The mean input of every
layer is measured on the first 256 calibration rows, in float. Activation rounding is not
corrected (its error is not known before the converter runs).

Example:
    >>> import numpy as np
    >>> from compresslib.keras.models import build
    >>> x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    >>> fixed, note = corrected_copy(build("lenet5"), x)
    >>> note["layers"]
    5
"""
from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from compresslib.keras.rebuild import is_graph_model

_KINDS = ("Conv2D", "Dense", "DepthwiseConv2D")


def int8_kernel(kernel: np.ndarray, depthwise: bool = False) -> np.ndarray:
    """The kernel as LiteRT's full-integer conversion rounds it: per output channel, symmetric, −127..127.

    Example:
        >>> w = np.array([[1.0, 0.5], [0.3, -0.25]], np.float32)
        >>> (int8_kernel(w) / (np.abs(w).max(axis=0) / 127)).round().astype(int).tolist()  # the int8 levels
        [[127, 127], [38, -64]]
    """
    k = np.asarray(kernel, np.float64)
    flat = k.reshape(k.shape[:-2] + (-1,)) if depthwise else k  # depthwise: output channel = cin × multiplier
    axes = tuple(range(flat.ndim - 1))
    scale = np.abs(flat).max(axis=axes, keepdims=True) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    q = np.clip(np.round(flat / scale), -127, 127) * scale
    return q.reshape(k.shape).astype(np.float32)


def _mean_output(layer: Any, mean_input: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Per-channel mean of ``layer``'s linear part applied to ``mean_input`` with ``kernel`` (no bias)."""
    kind = type(layer).__name__
    x = keras.ops.convert_to_tensor(mean_input)
    k = keras.ops.convert_to_tensor(kernel)
    if kind == "Dense":
        y = keras.ops.matmul(x, k)
    elif kind == "Conv2D":
        y = keras.ops.conv(x, k, layer.strides, layer.padding, layer.data_format, layer.dilation_rate)
    else:
        y = keras.ops.depthwise_conv(x, k, layer.strides, layer.padding, layer.data_format, layer.dilation_rate)
    y = keras.ops.convert_to_numpy(y).astype(np.float64)
    channel = 1 if getattr(layer, "data_format", "channels_last") == "channels_first" and kind != "Dense" else -1
    return np.moveaxis(y, channel, -1).reshape(-1, y.shape[channel]).mean(axis=0)


def corrected_copy(model: keras.Model, calibration: np.ndarray) -> tuple[keras.Model, dict]:
    """A BN-folded copy of ``model`` whose biases absorb the mean int8 weight-rounding error; and a note.

    A model that is not a functional graph (subclassed) comes back unchanged with
    ``note["layers"] == 0`` and the reason in ``note["skipped"]``; so does one the fold or the
    probe of layer inputs cannot take (with one warning).
    """
    if not is_graph_model(model):
        return model, {"layers": 0, "max_shift": 0.0, "skipped": "not a functional graph (subclassed)"}
    try:
        return _corrected(model, calibration)
    except Exception as exc:  # noqa: BLE001 - a graph the fold or the probe cannot take: convert it as it is
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ''}"
        warnings.warn(f"quantize(Int8Static): bias correction skipped ({reason})", UserWarning, stacklevel=4)
        return model, {"layers": 0, "max_shift": 0.0, "skipped": reason}


def _corrected(model: keras.Model, calibration: np.ndarray) -> tuple[keras.Model, dict]:
    from compresslib.keras.fold import fold_batchnorm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        work = fold_batchnorm(model)
    # top-level layers called once (those inside a nested model are not corrected)
    layers = [l for l in work.layers if type(l).__name__ in _KINDS and getattr(l, "use_bias", False)
              and getattr(l, "groups", 1) == 1 and len(l._inbound_nodes) == 1]
    if not layers:
        return work, {"layers": 0, "max_shift": 0.0}
    probe = keras.Model(work.inputs, [l.input for l in layers])
    outs = probe.predict(np.asarray(calibration)[:256], verbose=0, batch_size=64)
    outs = outs if isinstance(outs, list) else [outs]
    shift = 0.0
    for layer, x in zip(layers, outs):
        depthwise = type(layer).__name__ == "DepthwiseConv2D"
        w = keras.ops.convert_to_numpy(layer.kernel)
        mean_input = np.asarray(x, np.float64).mean(axis=0, keepdims=True).astype(np.float32)
        if type(layer).__name__ == "Dense":
            mean_input = mean_input.reshape(-1, mean_input.shape[-1]).mean(axis=0, keepdims=True)
        error = _mean_output(layer, mean_input, int8_kernel(w, depthwise) - w)
        bias = keras.ops.convert_to_numpy(layer.bias)
        layer.bias.assign((bias - error).astype(bias.dtype))
        shift = max(shift, float(np.abs(error).max()))
    return work, {"layers": len(layers), "max_shift": shift}
