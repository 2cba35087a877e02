"""Keras side of :func:`compresslib.transfer`: weight layers converted to and from PyTorch's layout.

Conv2D kernels are ``kh×kw×in×out`` (PyTorch: ``out×in×kh×kw``), DepthwiseConv2D kernels
``kh×kw×C×1`` (PyTorch: a grouped conv ``C×1×kh×kw``), Dense kernels ``in×out`` and, after a
Flatten of an H×W×C map, their rows in H·W·C order where PyTorch flattens C·H·W.

Example:
    >>> from compresslib.keras.models import build
    >>> layers = read_layers(build("lenet5"))
    >>> [(lw.name, lw.kind, tuple(lw.arrays["weight"].shape)) for lw in layers][:3]
    [('conv1', 'conv', (6, 1, 5, 5)), ('conv2', 'conv', (16, 6, 5, 5)), ('fc1', 'linear', (120, 400))]
"""
from __future__ import annotations

import re
from typing import Optional

import keras
import numpy as np

from compresslib.keras.rebuild import functional_of, producer, rebuild
from compresslib.core.layer_weights import Factored, LayerWeights, known_architecture


def arch_name(model) -> Optional[str]:
    """The model's name when it names a reference model or a family member, else None."""
    return model.name if known_architecture(getattr(model, "name", None)) else None


def _flat_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


_FACTOR = re.compile(r"^(.+)_(tucker|svd|cp)([0-3])$")


def factored(model) -> dict[str, Factored]:
    """``{decomposed layer's name: Factored}`` from the factor layers ``cl.decompose`` names
    ``<layer>_tucker0..2``, ``<layer>_svd0..1``, ``<layer>_cp0..3``.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.keras.models import build
        >>> d = cl.decompose(build("lenet5"), cl.SVD(rank=8), layers=["fc1"])
        >>> factored(d)
        {'fc1': Factored(kind='svd', rank=8, factors={0: 'fc1_svd0', 1: 'fc1_svd1'})}
    """
    groups: dict[str, tuple[str, dict]] = {}
    layers = {layer.name: layer for layer in _flat_layers(model)}
    for name in layers:
        match = _FACTOR.match(name)
        if match:
            base, kind, i = match.groups()
            groups.setdefault(base, (kind, {}))[1][int(i)] = name
    out = {}
    for base, (kind, factors) in groups.items():
        if kind == "tucker":
            kernel = layers[factors[1]].kernel.shape  # the k×k core: kh, kw, R1, R2
            rank = (int(kernel[2]), int(kernel[3]))
        else:
            first = layers[factors[0]]
            rank = int(first.units if kind == "svd" else first.filters)
        out[base] = Factored(kind, rank, dict(sorted(factors.items())))
    return out


def _flatten_source(model, layer) -> Optional[tuple[int, int, int]]:
    """(H, W, C) when ``layer`` (a Dense) reads a Flatten of an H×W×C map with H·W > 1, else None."""
    src = producer(model, layer)
    if src is None or type(src).__name__ != "Flatten":
        return None
    shape = tuple(src.input.shape[1:])
    if len(shape) != 3 or shape[0] * shape[1] == 1:
        return None
    return tuple(int(d) for d in shape)  # type: ignore[return-value]


def _a(v) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(v), dtype=np.float32)


def read_layers(model) -> list[LayerWeights]:
    """Every Conv2D, DepthwiseConv2D, Dense, BatchNormalization, Embedding (and compresslib's
    ``PositionEmbedding``) and LayerNormalization, in PyTorch's layout, in layer order."""
    out = []
    for layer in _flat_layers(model):
        kind = type(layer).__name__
        if kind == "DepthwiseConv2D":
            k = _a(layer.kernel)  # kh, kw, C, mult -> C*mult, 1, kh, kw (torch channel c*mult + m)
            kh, kw, c, mult = k.shape
            arrays = {"weight": k.transpose(2, 3, 0, 1).reshape(c * mult, 1, kh, kw)}
            if layer.use_bias:
                arrays["bias"] = _a(layer.bias)
            out.append(LayerWeights(layer.name, "conv", arrays, {"stride": tuple(layer.strides), "groups": c}))
        elif kind == "Conv2D":
            arrays = {"weight": _a(layer.kernel).transpose(3, 2, 0, 1)}
            if layer.use_bias:
                arrays["bias"] = _a(layer.bias)
            out.append(LayerWeights(layer.name, "conv", arrays,
                                    {"stride": tuple(layer.strides), "groups": int(layer.groups)}))
        elif kind == "Dense":
            k = _a(layer.kernel)
            hwc = _flatten_source(model, layer)
            if hwc is not None:
                h, w, c = hwc
                k = k.reshape(h, w, c, -1).transpose(2, 0, 1, 3).reshape(h * w * c, -1)
            arrays = {"weight": np.ascontiguousarray(k.T)}
            if layer.use_bias:
                arrays["bias"] = _a(layer.bias)
            out.append(LayerWeights(layer.name, "linear", arrays))
        elif kind in ("Embedding", "PositionEmbedding"):
            out.append(LayerWeights(layer.name, "embedding", {"weight": _a(layer.embeddings)}))
        elif kind == "LayerNormalization":
            if not (layer.scale and layer.center) or len(layer.gamma.shape) != 1:
                raise ValueError(f"model: layer {layer.name!r} is a LayerNormalization without scale or centre "
                                 "or over several axes; transfer moves the last-axis kind with both")
            out.append(LayerWeights(layer.name, "layernorm", {"weight": _a(layer.gamma), "bias": _a(layer.beta)},
                                    {"eps": float(layer.epsilon)}))
        elif kind == "BatchNormalization":
            n = int(layer.moving_mean.shape[0])
            arrays = {"weight": _a(layer.gamma) if layer.scale else np.ones(n, np.float32),
                      "bias": _a(layer.beta) if layer.center else np.zeros(n, np.float32),
                      "running_mean": _a(layer.moving_mean), "running_var": _a(layer.moving_variance)}
            out.append(LayerWeights(layer.name, "batchnorm", arrays, {"eps": float(layer.epsilon)}))
        elif layer.weights:
            raise ValueError(f"model: layer {layer.name!r} ({kind}) holds weights transfer does not know "
                             "(it moves Conv2D, DepthwiseConv2D, Dense, BatchNormalization, Embedding and LayerNormalization)")
    return out


def write_layers(model, assignments: dict[str, LayerWeights]) -> None:
    """Write canonical arrays into ``model``'s layers by name, in place."""
    layers = {layer.name: layer for layer in _flat_layers(model)}
    for name, lw in assignments.items():
        layer = layers[name]
        kind = type(layer).__name__
        a = lw.arrays
        if kind == "BatchNormalization":
            values = ([a["weight"]] if layer.scale else []) + ([a["bias"]] if layer.center else [])
            layer.set_weights(values + [a["running_mean"], a["running_var"]])
            continue
        if lw.kind in ("embedding", "layernorm"):
            layer.set_weights([a["weight"]] + ([a["bias"]] if lw.kind == "layernorm" else []))
            continue
        w = a["weight"]
        if kind == "DepthwiseConv2D":
            kh, kw, c, mult = layer.kernel.shape
            kernel = w.reshape(c, mult, kh, kw).transpose(2, 3, 0, 1)
        elif kind == "Conv2D":
            kernel = w.transpose(2, 3, 1, 0)
        else:  # Dense
            kernel = w.T
            hwc = _flatten_source(model, layer)
            if hwc is not None:
                h, ww, c = hwc
                kernel = kernel.reshape(c, h, ww, -1).transpose(1, 2, 0, 3).reshape(h * ww * c, -1)
        layer.set_weights([np.ascontiguousarray(kernel)] + ([a["bias"]] if "bias" in a else []))


def copy_model(model) -> keras.Model:
    """A copy of a functional or Sequential model with its weights (nothing shared)."""
    return rebuild(functional_of(model)) if not isinstance(model, keras.Sequential) else rebuild(model)


def check_batch(model, rng: np.random.Generator) -> np.ndarray:
    """Two samples for transfer's output check: random token ids for a model that reads integer ids
    (through an ``Embedding``), else uniform floats of the input shape (H, W, C)."""
    inp = model.inputs[0]
    if "int" in str(inp.dtype):
        emb = next(layer for layer in _flat_layers(model) if type(layer).__name__ == "Embedding")
        length = next((int(layer.context) for layer in _flat_layers(model)
                       if type(layer).__name__ == "PositionEmbedding"), 16)
        return rng.integers(0, int(emb.input_dim), (2, length)).astype(np.int64)
    return rng.random((2,) + tuple(input_shape(model)), dtype=np.float32)


def input_shape(model) -> tuple:
    """The per-sample input shape (H, W, C)."""
    shape = tuple(model.inputs[0].shape[1:])
    if any(d is None for d in shape):
        raise ValueError(f"model: transfer's check needs a fixed input shape, got {shape}; pass check=False")
    return shape


def outputs(model, x: np.ndarray) -> np.ndarray:
    return np.asarray(model(x, training=False), dtype=np.float32)


def layer_outputs(model, x: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """Outputs of the named layers on one batch (one functional model with those outputs)."""
    graph = functional_of(model)
    present = [n for n in names if any(layer.name == n for layer in graph.layers)]
    if not present:
        return {}
    inputs = graph.inputs[0] if len(graph.inputs) == 1 else graph.inputs
    probe = keras.Model(inputs, [graph.get_layer(n).output for n in present])
    outs = probe(x, training=False)
    outs = outs if isinstance(outs, (list, tuple)) else [outs]
    return {n: np.asarray(o, dtype=np.float32) for n, o in zip(present, outs)}
