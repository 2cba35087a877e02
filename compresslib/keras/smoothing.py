"""SmoothQuant (Xiao et al. 2023) for Keras models: ``cl.transform(model, cl.SmoothQuant(alpha), calibration_data=x)``.

The pairs are found in the functional graph: a ``LayerNormalization`` (over the last axis, with
scale and center) whose output is read only by ``Dense`` layers, ``EinsumDense`` layers that sum
its last axis against their kernel's first, or ``MultiHeadAttention`` layers taking it as query,
key and value (the scales go into their query, key and value projections). One whose output also
feeds anything else (a residual ``Add``, a model output) is left alone: folding the scales into it
would change the function. The activation maxima come from the LayerNorms' outputs on
``calibration_data``; the scales from :func:`compresslib.core.smoothing.smoothing_scales`, as in
``compresslib.torch.smoothing``. A model without such a pair is refused before any work, naming
each LayerNorm and what else reads it; a subclassed model is refused naming its class.

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

from typing import Any, Optional, Sequence

import keras
import numpy as np

from compresslib.configs import SmoothQuant
from compresslib.core.smoothing import check_alpha, check_calibration, smoothing_scales
from compresslib.keras.checks import require_graph
from compresslib.keras.rebuild import copy_model, functional_of
from compresslib.registry import register


def _last_axis_norm(layer: Any) -> bool:
    if not (isinstance(layer, keras.layers.LayerNormalization) and layer.scale and layer.center):
        return False
    axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
    rank = len(layer.input.shape)
    return len(axis) == 1 and axis[0] in (-1, rank - 1)


def _projections(op: Any, width: int) -> Optional[list]:
    """The layers whose kernels read a LayerNorm's output when ``op`` is called on it: a ``Dense`` or an
    ``EinsumDense`` summing the last axis against its kernel's first, or a ``MultiHeadAttention``'s query,
    key and value projections (self-attention); None for anything else (or a width that does not fit)."""
    from compresslib.keras.calibrated import summed_axes

    if isinstance(op, keras.layers.MultiHeadAttention):
        layers = [op._query_dense, op._key_dense, op._value_dense]
    elif isinstance(op, (keras.layers.Dense, keras.layers.EinsumDense)):
        layers = [op]
    else:
        return None
    ok = all((isinstance(l, keras.layers.Dense) or summed_axes(l) == 1) and l.kernel.shape[0] == width
             for l in layers)
    return layers if ok else None


def _graph_readers(graph: Any) -> dict[str, list]:
    """``{producer name: [(op, inputs of the call, how many of them the producer gave)]}`` over the graph."""
    readers: dict[str, list] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            names = [t._keras_history.operation.name for t in node.input_tensors]
            for name in dict.fromkeys(names):
                readers.setdefault(name, []).append((node.operation, len(names), names.count(name)))
    return readers


def layernorm_pairs(model: Any) -> dict[str, list[str]]:
    """``{LayerNormalization name: [Dense/EinsumDense/MultiHeadAttention names]}`` for every last-axis LayerNorm
    read only by such layers (a MultiHeadAttention on it for query, key and value alike)."""
    return {k: [op.name for op in ops] for k, ops in _pairs(model)[0].items()}


def _pairs(model: Any) -> tuple[dict[str, list], list[str]]:
    """``({LayerNorm name: [reader ops]}, [why each other LayerNorm is not one])``."""
    require_graph(model, "SmoothQuant")
    graph = functional_of(model)
    readers = _graph_readers(graph)
    outputs = {t._keras_history.operation.name for t in graph.outputs}
    out, why = {}, []
    for layer in graph.layers:
        if not isinstance(layer, keras.layers.LayerNormalization):
            continue
        if not _last_axis_norm(layer):
            why.append(f"{layer.name!r} (not a last-axis LayerNormalization with scale and center)")
            continue
        found = readers.get(layer.name, [])
        width = layer.gamma.shape[0]
        bad = [op.name for op, n, mine in found
               if _projections(op, width) is None or mine != n
               or (not isinstance(op, keras.layers.MultiHeadAttention) and n != 1)]
        if layer.name in outputs:
            bad.append("the model's output")
        if found and not bad:
            out[layer.name] = [op for op, _, _ in found]
        else:
            why.append(f"{layer.name!r} (also read by {', '.join(bad[:3]) or 'nothing'})")
    return out, why


def smooth_pairs(model: Any, pairs: dict[str, Sequence[str]], calibration_data: Any, alpha: float) -> Any:
    """Smooth ``model`` in place for ``{LayerNormalization name: [reader names]}`` and return it (Dense,
    EinsumDense or MultiHeadAttention readers, the only readers of the LayerNorm's output: the caller
    guarantees it)."""
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
        width = norm.gamma.shape[0]
        kernels = [l.kernel for n in pairs[name] for l in _projections(graph.get_layer(n), width)]
        wmax = np.max([np.abs(keras.ops.convert_to_numpy(k)).reshape(width, -1).max(1) for k in kernels], axis=0)
        scale = smoothing_scales(a, wmax, alpha)
        norm.gamma.assign(keras.ops.convert_to_numpy(norm.gamma) / scale)
        norm.beta.assign(keras.ops.convert_to_numpy(norm.beta) / scale)
        for k in kernels:
            w = keras.ops.convert_to_numpy(k)
            k.assign(w * scale.reshape((width,) + (1,) * (w.ndim - 1)))
    return model


@register("transform", "keras", SmoothQuant)
def smooth_quant(model: Any, config: SmoothQuant, *, calibration_data: Any = None) -> Any:
    """A smoothed copy of ``model`` (see the module docstring); ``model`` is never changed. A model with no
    LayerNorm read only by Dense/EinsumDense/MultiHeadAttention layers is refused, naming each LayerNorm."""
    check_calibration(calibration_data)
    pairs, why = _pairs(model)
    if not pairs:
        raise ValueError(f"model: SmoothQuant found no LayerNormalization of {model.name} read only by Dense, "
                         f"EinsumDense or MultiHeadAttention layers (a post-LayerNorm model's LayerNorms also feed "
                         f"a residual): {'; '.join(why[:8]) or 'it has no LayerNormalization'}")
    out = copy_model(model)
    return smooth_pairs(out, {k: [op.name for op in ops] for k, ops in pairs.items()}, calibration_data,
                        config.alpha)


__all__ = ["layernorm_pairs", "smooth_pairs", "smooth_quant"]
