"""Fold BatchNormalization into the Conv2D, DepthwiseConv2D or Dense layer before it (Keras 3).

The same arithmetic as PyTorch (``compresslib.core.lowrank.fold_bn``): in
inference a BN is ``s·(z − μ) + β`` per channel with ``s = γ/√(σ² + ε)``, so the
layer before it becomes ``W' = s·W``, ``b' = s·(b − μ) + β``. The functional
graph is rebuilt without the folded BN layers (``compresslib.keras.rebuild``);
residual models are handled because the pairs are read from the graph. A BN is
left in place, and named in one warning, when its input is not a Conv2D/Dense
output (or a DepthwiseConv2D with ``depth_multiplier=1``), that output is also
used elsewhere, the layer has a non-linear activation built in, or the BN does
not normalise the last axis. Keras has no public folding tool (the LiteRT
converter folds BN internally when it converts).

Example:
    >>> import numpy as np
    >>> from compresslib.keras.models import build
    >>> m = build("resnet8")
    >>> f = fold_batchnorm(m)
    >>> sum(type(l).__name__ == "BatchNormalization" for l in f.layers)
    0
    >>> x = np.random.default_rng(0).normal(size=(2, 28, 28, 1)).astype("float32")
    >>> bool(np.allclose(f(x), m(x), atol=1e-5))
    True
"""
from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

from compresslib.core.lowrank import fold_bn
from compresslib.keras.checks import warn_unchanged
from compresslib.keras.rebuild import consumers, functional_of, graph_layers, identity, is_graph_model, producer, rebuild

_PRODUCERS = ("Conv2D", "Dense", "DepthwiseConv2D")


def _graphs(model) -> list:
    """``model`` and every Sequential/functional model nested in it, outermost first."""
    out = [model]
    for layer in functional_of(model, "fold_batchnorm").layers:
        if is_graph_model(layer):
            out.extend(_graphs(layer))
    return out


def batchnorm_pairs(model, example_input: Any = None) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """``[(layer_name, bn_name), ...]`` that can be folded, and ``{bn_name: reason}`` for those that cannot.

    ``example_input`` is unused (the graph is read without running the model; as torch's signature).

    Nested Sequential/functional models (a ``keras.applications`` backbone) are read too.
    """
    pairs, skipped = [], {}
    for sub in _graphs(model):
        _pairs_in(sub, pairs, skipped)
    return pairs, skipped


def _pairs_in(model, pairs: list, skipped: dict) -> None:
    graph = functional_of(model)
    uses = consumers(model)
    for layer in graph.layers:
        if type(layer).__name__ != "BatchNormalization":
            continue
        src = producer(model, layer)
        rank = len(layer.input.shape) if hasattr(layer, "input") else None
        axis = layer.axis if isinstance(layer.axis, int) else (layer.axis[0] if len(layer.axis) == 1 else None)
        if src is None or type(src).__name__ not in _PRODUCERS:
            skipped[layer.name] = "its input is not a Conv2D/DepthwiseConv2D/Dense output"
        elif uses.get(src.name, 0) != 1:
            skipped[layer.name] = f"{src.name}'s output is also used elsewhere"
        elif getattr(src.activation, "__name__", "") != "linear":
            skipped[layer.name] = f"{src.name} has a built-in activation before the BatchNorm"
        elif axis is None or (axis != -1 and (rank is None or axis != rank - 1)):
            skipped[layer.name] = f"axis={layer.axis} is not the channel (last) axis"
        elif type(src).__name__ != "Dense" and src.data_format != "channels_last":
            skipped[layer.name] = f"{src.name} is channels_first"
        elif type(src).__name__ == "DepthwiseConv2D" and src.depth_multiplier != 1:
            skipped[layer.name] = f"{src.name} has depth_multiplier {src.depth_multiplier}"
        else:
            pairs.append((src.name, layer.name))


def _folded(layer, bn) -> Any:
    """A callable that applies a fresh copy of ``layer`` with ``bn`` folded in (and a bias)."""
    kernel = np.asarray(layer.kernel, dtype=np.float64)
    shape = kernel.shape
    if type(layer).__name__ == "DepthwiseConv2D":  # kh×kw×C×mult: output channel c·mult + m, as a last axis
        kernel = kernel.reshape(shape[0], shape[1], 1, shape[2] * shape[3])
    bias = np.asarray(layer.bias, dtype=np.float64) if layer.use_bias else None
    channels = int(np.asarray(bn.moving_mean).shape[0])
    gamma = np.asarray(bn.gamma) if bn.scale else np.ones(channels)
    beta = np.asarray(bn.beta) if bn.center else np.zeros(channels)
    new_k, new_b = fold_bn(kernel, bias, gamma, beta, np.asarray(bn.moving_mean), np.asarray(bn.moving_variance),
                           bn.epsilon, out_axis=kernel.ndim - 1)
    new_k = new_k.reshape(shape)
    config = layer.get_config()
    config["use_bias"] = True
    new = layer.__class__.from_config(config)

    def apply(*args, **kwargs):
        out = new(*args, **kwargs)
        new.set_weights([new_k.astype(new.kernel.dtype), new_b.astype(new.bias.dtype)])
        return out

    return apply


def fold_batchnorm(model, *, example_input: Any = None) -> keras.Model:
    """A rebuilt copy of ``model`` without the BatchNorm layers that follow a Conv2D/Dense.

    Outputs equal the original's in inference (``training=False``) to float tolerance.
    ``example_input`` is unused (the pairs are read from the graph; accepted so that both
    frameworks take the same arguments). A subclassed model is refused (its graph is its code).
    """
    functional_of(model, "fold_batchnorm")
    pairs, skipped = batchnorm_pairs(model)
    if not pairs:
        why = "; ".join(f"{n}: {w}" for n, w in skipped.items())
        warn_unchanged("fold_batchnorm", f"no BatchNormalization can be folded ({why})" if skipped
                       else "it has no BatchNormalization layer")
        return rebuild(model)
    by_name = {layer.name: layer for layer in graph_layers(model)}
    replacements = {}
    for layer_name, bn_name in pairs:
        layer, bn = by_name[layer_name], by_name[bn_name]
        replacements[layer_name] = (lambda l, b: (lambda _: _folded(l, b)))(layer, bn)
        replacements[bn_name] = lambda _: identity
    if skipped:
        warnings.warn(f"fold_batchnorm: left {len(skipped)} BatchNorm layer(s) unfolded: "
                      + "; ".join(f"{n}: {why}" for n, why in skipped.items()), UserWarning, stacklevel=2)
    return rebuild(model, replacements)
