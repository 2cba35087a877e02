"""SmoothQuant (Xiao et al. 2023) for Keras models: ``cl.transform(model, cl.SmoothQuant(alpha), calibration_data=x)``.

The pairs are found in the functional graph: a ``LayerNormalization`` (over the last axis, with
scale and center) whose output is read only by ``Dense`` layers. One whose output also feeds
anything else (a residual ``Add``, a model output) is left alone: folding the scales into it would
change the function. The activation maxima come from the LayerNorms' outputs on
``calibration_data``; the scales from :func:`compresslib.core.smoothing.smoothing_scales`, as in
``compresslib.torch.smoothing``. A model without such a pair comes back unchanged with one
warning; a subclassed model is refused naming its class.

Example:
    >>> import keras, numpy as np, compresslib as cl
    >>> i = keras.Input((8,))
    >>> m = keras.Model(i, keras.layers.Dense(4, name="fc")(keras.layers.LayerNormalization(name="norm")(i)))
    >>> x = np.random.default_rng(0).normal(size=(16, 8)).astype("float32") * np.float32([20] + [1] * 7)
    >>> s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x)
    >>> bool(np.allclose(s(x), m(x), atol=1e-4)), layernorm_pairs(m)
    (True, {'norm': ['fc']})
"""
from __future__ import annotations

from typing import Any, Sequence

import keras
import numpy as np

from compresslib.configs import SmoothQuant
from compresslib.core.smoothing import check_alpha, check_calibration, smoothing_scales, warn_no_pairs
from compresslib.keras.checks import require_graph
from compresslib.keras.rebuild import copy_model, functional_of
from compresslib.registry import register


def _last_axis_norm(layer: Any) -> bool:
    if not (isinstance(layer, keras.layers.LayerNormalization) and layer.scale and layer.center):
        return False
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape)
    return len(axis) == 1 and axis[0] in (-1, rank - 1)


def layernorm_pairs(model: Any) -> dict[str, list[str]]:
    """``{LayerNormalization name: [Dense names]}`` for every last-axis LayerNorm read only by Dense layers."""
    require_graph(model, "SmoothQuant")
    graph = functional_of(model)
    readers: dict[str, list] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            for t in node.input_tensors:
                readers.setdefault(t._keras_history.operation.name, []).append(
                    (node.operation, len(node.input_tensors)))
    outputs = {t._keras_history.operation.name for t in graph.outputs}
    out = {}
    for layer in graph.layers:
        found = readers.get(layer.name, [])
        if (_last_axis_norm(layer) and layer.name not in outputs and found
                and all(isinstance(op, keras.layers.Dense) and n == 1 and op.kernel.shape[0] == layer.gamma.shape[0]
                        for op, n in found)):
            out[layer.name] = [op.name for op, _ in found]
    return out


def smooth_pairs(model: Any, pairs: dict[str, Sequence[str]], calibration_data: Any, alpha: float) -> Any:
    """Smooth ``model`` in place for ``{LayerNormalization name: [Dense names]}`` and return it (the Dense
    layers must be the only readers of the LayerNorm's output: the caller guarantees it)."""
    alpha = check_alpha(alpha)
    graph = functional_of(model)
    names = list(pairs)
    probe = keras.Model(graph.inputs, [graph.get_layer(n).output for n in names])
    x = np.asarray(calibration_data)
    amax = [None] * len(names)
    for start in range(0, len(x), 256):
        outs = probe.predict_on_batch(x[start:start + 256])
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        for i, o in enumerate(outs):
            a = np.abs(np.asarray(o, dtype=np.float32)).reshape(-1, np.shape(o)[-1]).max(0)
            amax[i] = a if amax[i] is None else np.maximum(amax[i], a)
    for name, a in zip(names, amax):
        norm = graph.get_layer(name)
        dense = [graph.get_layer(n) for n in pairs[name]]
        wmax = np.max([np.abs(keras.ops.convert_to_numpy(d.kernel)).max(1) for d in dense], axis=0)
        scale = smoothing_scales(a, wmax, alpha)
        norm.gamma.assign(keras.ops.convert_to_numpy(norm.gamma) / scale)
        norm.beta.assign(keras.ops.convert_to_numpy(norm.beta) / scale)
        for d in dense:
            d.kernel.assign(keras.ops.convert_to_numpy(d.kernel) * scale[:, None])
    return model


@register("transform", "keras", SmoothQuant)
def smooth_quant(model: Any, config: SmoothQuant, *, calibration_data: Any = None) -> Any:
    """A smoothed copy of ``model`` (see the module docstring); ``model`` is never changed."""
    check_calibration(calibration_data)
    pairs = layernorm_pairs(model)
    out = copy_model(model)
    if pairs:
        return smooth_pairs(out, pairs, calibration_data, config.alpha)
    warn_no_pairs(model.name, "LayerNormalization", "Dense")
    return out


__all__ = ["layernorm_pairs", "smooth_pairs", "smooth_quant"]
