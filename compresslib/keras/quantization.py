"""Quantization of Keras 3 models: LiteRT int8 (dynamic-range, full-integer), Keras-native, QAT.

* ``Int8Dynamic`` / ``Int8Static``: the LiteRT (TFLite) converter (:mod:`compresslib.keras.litert`:
  recurrent layers unrolled, converter errors explained), returned as a
  :class:`LiteRTModel` (``__call__``, ``predict``, ``predict_on_batch``) that
  :func:`compresslib.measure`, :func:`compresslib.keras.train.evaluate` and
  :func:`compresslib.save` accept. Static = full integer, calibrated on
  ``calibration_data`` (float input and output, int8 inside).
* ``WeightOnly(bits=8|4)`` without a group size: Keras's own ``model.quantize("int8"|"int4")``
  (Dense/EinsumDense/Embedding only; Conv2D stays float, with one warning; a model with
  none of them is refused).
* ``Float16`` / ``BFloat16``: the model rebuilt with that dtype policy (:mod:`compresslib.keras.half`:
  layers whose ops lack the dtype stay float32, named in one warning).
* ``QAT``: compresslib's own :class:`FakeQuantDense` / :class:`FakeQuantConv2D` layers
  (Keras 3 has no QAT): weights (per channel) and outputs are fake-quantized in the
  forward pass, gradients pass straight through the rounding. :func:`convert` returns
  a plain Keras model whose weights lie exactly on the ``weight_bits`` grid.

Example:
    >>> import keras, numpy as np, compresslib as cl
    >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> q = cl.quantize(m, cl.Int8Dynamic())
    >>> q(np.zeros((2, 8), np.float32)).shape
    (2, 4)
"""
from __future__ import annotations

import warnings
from typing import Any, Optional

import keras
import numpy as np
from keras import ops

from compresslib.configs import QAT, BFloat16, Float16, Int8Dynamic, Int8Static, QuantConfig, WeightOnly
from compresslib.core import quant as cq
from compresslib.core.sensitivity import scan
from compresslib.keras.io import register as register_class
from compresslib.keras.checks import check_model, describe, is_subclassed, leaf_layers, require_graph, warn_unchanged
from compresslib.keras.bias_correction import corrected_copy
from compresslib.keras.distributed import sync_max
from compresslib.keras.litert import LiteRTModel, to_litert
from compresslib.keras.rebuild import copy_model, graph_layers, rebuild
from compresslib.registry import register


_check_model = check_model


# --------------------------------------------------------------------------- fake quantization (QAT)


def _fake_quant(x, bits: int, signed: bool, axis: Optional[int], sync: bool = False):
    """Symmetric fake-quantization, straight-through gradient; scale as in :mod:`compresslib.core.quant`.

    ``sync``: the range is the maximum over the replicas of a distributed step (an activation's range
    differs between the replicas' shards of a batch; a kernel's does not).
    """
    qmin, qmax = cq.qrange(bits, signed)
    if axis is None:
        amax = ops.max(ops.abs(x))
        if sync:
            amax = sync_max(amax)
    else:
        reduce = tuple(i for i in range(len(x.shape)) if i != axis % len(x.shape))
        amax = ops.max(ops.abs(x), axis=reduce, keepdims=True)
    half = (qmax - qmin) / 2.0 if signed else float(qmax)
    scale = ops.maximum(amax / half, cq.EPS)
    q = ops.clip(ops.round(x * (1.0 / scale)), qmin, qmax) * scale
    return x + ops.stop_gradient(q - x)


class _FakeQuantMixin:
    def _fq_init(self, weight_bits: int, activation_bits: Optional[int], per_channel: bool) -> None:
        self.weight_bits = cq.check_bits(weight_bits, "weight_bits")
        self.activation_bits = None if activation_bits is None else cq.check_bits(activation_bits, "activation_bits")
        self.per_channel = bool(per_channel)

    def _fq_kernel(self):
        return _fake_quant(self.kernel, self.weight_bits, True, -1 if self.per_channel else None)

    def _fq_output(self, y):
        if self.activation_bits is None:
            return y
        return _fake_quant(y, self.activation_bits, True, None, sync=True)

    def _fq_config(self, config: dict) -> dict:
        config.update(weight_bits=self.weight_bits, activation_bits=self.activation_bits,
                      per_channel=self.per_channel)
        return config


@register_class
@keras.saving.register_keras_serializable(package="compresslib")
class FakeQuantDense(_FakeQuantMixin, keras.layers.Dense):
    """Dense whose kernel and output are fake-quantized (straight-through gradients). compresslib's own."""

    def __init__(self, *args, weight_bits: int = 8, activation_bits: Optional[int] = 8, per_channel: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fq_init(weight_bits, activation_bits, per_channel)

    def call(self, inputs, training=None):
        y = ops.matmul(inputs, self._fq_kernel())
        if self.use_bias:
            y = ops.add(y, self.bias)
        if self.activation is not None:
            y = self.activation(y)
        return self._fq_output(y)

    def get_config(self) -> dict:
        return self._fq_config(super().get_config())


@register_class
@keras.saving.register_keras_serializable(package="compresslib")
class FakeQuantConv2D(_FakeQuantMixin, keras.layers.Conv2D):
    """Conv2D whose kernel (per output channel) and output are fake-quantized. compresslib's own."""

    def __init__(self, *args, weight_bits: int = 8, activation_bits: Optional[int] = 8, per_channel: bool = True,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._fq_init(weight_bits, activation_bits, per_channel)

    def call(self, inputs, training=None):
        y = self.convolution_op(inputs, self._fq_kernel())
        if self.use_bias:
            shape = (1,) * (len(y.shape) - 1) + (self.filters,) if self.data_format == "channels_last" \
                else (1, self.filters) + (1,) * (len(y.shape) - 2)
            y = ops.add(y, ops.reshape(self.bias, shape))
        if self.activation is not None:
            y = self.activation(y)
        return self._fq_output(y)

    def get_config(self) -> dict:
        return self._fq_config(super().get_config())


def _swap(model, factory) -> keras.Model:
    """Rebuild ``model`` with each plain Dense/Conv2D replaced by ``factory(layer)`` (weights copied),
    inside nested Sequential/functional models too."""
    reps = {}
    for layer in graph_layers(model):
        new_cls = factory(layer)
        if new_cls is None:
            continue

        def make(layer, new_cls=new_cls):
            cfg = layer.get_config()
            extra = new_cls[1]
            for k in ("weight_bits", "activation_bits", "per_channel"):
                cfg.pop(k, None)
            new = new_cls[0].from_config({**cfg, **extra})
            weights = new_cls[2](layer)

            def apply(*args, **kwargs):
                out = new(*args, **kwargs)
                new.set_weights(weights)
                return out
            return apply
        reps[layer.name] = make
    return rebuild(model, reps)


@register("prepare_qat", "keras", QAT)
def prepare_qat(model, config: QAT = QAT(), *, example_input: Any = None) -> keras.Model:
    """A copy of ``model`` with Dense/Conv2D replaced by fake-quant layers, ready to ``fit``.

    Layers of other kinds keep float weights (named in one warning); a model with no
    Dense/Conv2D comes back unchanged, with a warning. Subclassed models are refused
    (their layers are wired by their own code).

    Example:
        >>> q = prepare_qat(model, cl.QAT(weight_bits=4))            # doctest: +SKIP
        >>> fit(q, train, epochs=1); m4 = convert(q)                  # doctest: +SKIP
    """
    require_graph(model, "prepare_qat(QAT)")
    extra = dict(weight_bits=config.weight_bits, activation_bits=config.activation_bits,
                 per_channel=config.per_channel)

    def factory(layer):
        if type(layer) is keras.layers.Dense:
            return FakeQuantDense, extra, lambda l: [np.array(w) for w in l.get_weights()]
        if type(layer) is keras.layers.Conv2D:
            return FakeQuantConv2D, extra, lambda l: [np.array(w) for w in l.get_weights()]
        return None

    if not any(factory(layer) for layer in graph_layers(model)):
        warn_unchanged("prepare_qat(QAT)", "it fake-quantizes Dense and Conv2D layers and the model has none")
    else:
        _warn_skipped(model, (keras.layers.Dense, keras.layers.Conv2D), "prepare_qat")
    return _swap(model, factory)


def convert(model) -> keras.Model:
    """A plain Keras model from a QAT model: each kernel snapped to its ``weight_bits`` grid (core math)."""
    _check_model(model)
    if is_subclassed(model) or not any(isinstance(l, _FakeQuantMixin) for l in graph_layers(model)):
        raise TypeError("model must come from prepare_qat(model, QAT(...)) (no fake-quant layers found)")

    def snapped(layer):
        ws = [np.array(w) for w in layer.get_weights()]
        qt = cq.quantize_tensor(ws[0], layer.weight_bits, symmetric=True, axis=-1 if layer.per_channel else None)
        return [qt.dequantize()] + ws[1:]

    def factory(layer):
        if isinstance(layer, FakeQuantDense):
            return keras.layers.Dense, {}, snapped
        if isinstance(layer, FakeQuantConv2D):
            return keras.layers.Conv2D, {}, snapped
        return None

    return _swap(model, factory)


def _float_weights(layer) -> bool:
    return any("float" in str(v.dtype) and "seed" not in v.path for v in layer.weights)


def _warn_skipped(model, handled: tuple, verb: str) -> None:
    skipped = [f"{l.name} ({type(l).__name__})" for l in leaf_layers(model)
               if _float_weights(l) and not isinstance(l, handled) and not _is_normalization(l)]
    if skipped:
        warnings.warn(f"{verb}: layers left in float (not supported by this mode): {describe(skipped)}",
                      UserWarning, stacklevel=3)


def _is_normalization(layer) -> bool:
    return isinstance(layer, (keras.layers.BatchNormalization, keras.layers.LayerNormalization,
                              keras.layers.GroupNormalization, keras.layers.Normalization))


# --------------------------------------------------------------------------- the verb


@register("quantize", "keras", Int8Dynamic)
def quantize_dynamic(model, config: Int8Dynamic, *, calibration_data: Any = None) -> "LiteRTModel":
    """LiteRT dynamic-range int8: int8 weights, activations quantized per batch at run time.

    ``calibration_data`` is not needed; for a recurrent model with a free sequence length it
    gives the length to convert for (see :mod:`compresslib.keras.litert`).
    """
    return to_litert(model, None, what="Int8Dynamic", example=calibration_data)


@register("quantize", "keras", Int8Static)
def quantize_static(model, config: Int8Static, *, calibration_data: Any = None) -> "LiteRTModel":
    """LiteRT full-integer int8 calibrated on ``calibration_data`` (float input and output, int8 inside).

    ``calibration_data``: an array of inputs, or a stream of batches (a ``tf.data.Dataset`` of ``x`` or
    ``(x, y)``, any re-iterable of them), read batch by batch by the converter and never held whole; the
    checks and bias correction use its first batch.

    ``config.bias_correction``: the converter is given a BN-folded copy whose biases absorb the
    mean error of rounding the weights (:mod:`compresslib.keras.bias_correction`); the result's
    ``bias_correction`` says how many layers. ``config.float_output=True`` is refused (PyTorch only).
    """
    check_model(model)
    if config.float_output:
        raise ValueError("config: Int8Static(float_output=True) is PyTorch-only. LiteRT's converter has no public "
                         "per-layer float option; its experimental QuantizationDebugger can keep the output layer "
                         "float, but on ResNet8 that did not raise the int8 model's cosine to fp32, so "
                         "compresslib does not offer it for Keras; use float_output=False")
    if calibration_data is None:
        raise ValueError("calibration_data is required for static quantization: an array of example inputs")
    notes: list = []

    def correct(work: keras.Model, x: np.ndarray) -> keras.Model:
        fixed, note = corrected_copy(work, x)
        notes.append(note)
        return fixed

    result = to_litert(model, calibration_data, what="Int8Static",
                       transform=correct if config.bias_correction else None)
    result.bias_correction = notes[0] if notes else None
    return result


@register("quantize", "keras", WeightOnly)
def quantize_weight_only(model, config: WeightOnly, *, calibration_data: Any = None) -> keras.Model:
    """Keras's own ``model.quantize("int8" | "int4")`` on a copy (Dense/EinsumDense/Embedding only)."""
    check_model(model)
    if config.group_size is not None:
        raise ValueError("config.group_size: Keras's model.quantize has no groups; use group_size=None")
    handled = (keras.layers.Dense, keras.layers.EinsumDense, keras.layers.Embedding)
    if not any(isinstance(l, handled) for l in leaf_layers(model)):
        raise ValueError(f"model: WeightOnly({config.bits}) uses Keras's model.quantize, which quantizes Dense, "
                         f"EinsumDense and Embedding layers; {model.name} has none")
    new = copy_model(model)
    _warn_skipped(new, handled, f"WeightOnly({config.bits})")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        new.quantize("int8" if config.bits == 8 else "int4")
    return new


@register("quantize", "keras", Float16, BFloat16)
def quantize_half(model, config: QuantConfig, *, calibration_data: Any = None) -> keras.Model:
    """A copy rebuilt with the float16 or bfloat16 dtype policy.

    Layers that cannot run in that dtype here (e.g. recurrent layers in bfloat16 on
    TensorFlow's CPU, whose initializer needs ``qr``) stay float32, named in one warning.
    """
    from compresslib.keras.half import retyped

    check_model(model)
    return retyped(model, "float16" if isinstance(config, Float16) else "bfloat16", type(config).__name__)


# --------------------------------------------------------------------------- sensitivity


def quantizable_layers(model) -> list[str]:
    """Names of the layers whose weights quantization rounds (Conv2D and Dense), in model order."""
    return [l.name for l in _check_model(model).layers if isinstance(l, (keras.layers.Dense, keras.layers.Conv2D))]


def fake_quantize_weights(model, bits: int, layers: Optional[list[str]] = None, per_channel: bool = True):
    """A float copy with Conv2D/Dense kernels (all, or only ``layers``) rounded to ``bits`` (core math)."""
    cq.check_bits(bits)
    names = quantizable_layers(model)
    chosen = set(names) if layers is None else set(layers)
    unknown = chosen - set(names)
    if unknown:
        raise ValueError(f"layers: unknown layer names {sorted(unknown)}; quantizable: {names}")
    new = copy_model(model)
    for l in new.layers:
        if l.name in chosen:
            ws = l.get_weights()
            qt = cq.quantize_tensor(ws[0], bits, symmetric=True, axis=-1 if per_channel else None)
            l.set_weights([qt.dequantize()] + ws[1:])
    return new


def sensitivity(model, data: Any, bits: int = 4) -> dict[str, float]:
    """Accuracy of ``model`` when only one layer at a time has its kernel quantized to ``bits``."""
    from compresslib.keras.train import evaluate

    return scan(quantizable_layers(model), [bits],
                lambda name, b: evaluate(fake_quantize_weights(model, b, [name]), data), flat=True)


__all__ = ["quantize_dynamic", "quantize_static", "quantize_weight_only", "quantize_half", "prepare_qat", "convert",
           "quantizable_layers", "fake_quantize_weights", "sensitivity", "LiteRTModel", "FakeQuantDense",
           "FakeQuantConv2D"]
