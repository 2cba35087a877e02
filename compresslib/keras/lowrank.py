"""Low-rank decomposition of Keras 3 models: SVD for ``Dense``, Tucker-2 and CP for ``Conv2D``.

The model is rebuilt as a functional model (``compresslib.keras.rebuild``) in
which each chosen layer is replaced by consecutive ordinary layers, so the
result saves, quantizes and converts (LiteRT) like any Keras model:

* ``SVD``: ``Dense(m)`` becomes ``Dense(r, use_bias=False)`` → ``Dense(m, activation)``;
* ``Tucker``: ``Conv2D`` becomes ``Conv2D 1×1 (R1)`` → ``Conv2D k×k (R2)`` → ``Conv2D 1×1 (C_out, activation)``
  (a mode at full rank, ``R1 = C_in`` or ``R2 = C_out``, has no 1×1 layer: Tucker-1);
* ``CP``: ``Conv2D 1×1 (R)`` → ``DepthwiseConv2D kh×1`` → ``DepthwiseConv2D 1×kw`` → ``Conv2D 1×1``.

New layers are named ``<layer>_svd0``/``_svd1``, ``<layer>_tucker0..2`` and
``<layer>_cp0..3``. The factors come from ``compresslib.core.lowrank`` (the
same code the PyTorch backend uses; Keras kernels are transposed HWIO ↔ OIHW
on the way). Keras has no low-rank tool of its own; layers whose factors would
not be smaller, or that cannot be factored, are kept and named in one warning.

Example:
    >>> import compresslib as cl
    >>> from compresslib.keras.models import build
    >>> d = cl.decompose(build("mlp_wide"), cl.SVD(rank=64), layers=["fc1", "fc2"])
    >>> [l.name for l in d.layers][2:6]
    ['fc1_svd0', 'fc1_svd1', 'fc2_svd0', 'fc2_svd1']
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence, Union

import keras
import numpy as np

from compresslib.configs import CP, SVD, LowRankConfig, Tucker, check_config
from compresslib.core import lowrank as core
from compresslib.keras.checks import warn_unchanged
from compresslib.keras.rebuild import functional_of, graph_layers, rebuild
from compresslib.registry import register

LayerFilter = Union[None, str, Sequence[str], Callable[[str, Any], bool]]


def _target(config: LowRankConfig) -> str:
    return "Dense" if isinstance(config, SVD) else "Conv2D"


def _unsupported(layer, config: LowRankConfig) -> str:
    want = _target(config)
    kind = type(layer).__name__
    if kind != want:
        return f"{kind} is not a {want} ({type(config).__name__} factors {want} layers)"
    if want == "Conv2D":
        if layer.groups != 1:
            return f"grouped convolution (groups={layer.groups})"
        if layer.data_format != "channels_last":
            return "data_format='channels_first'"
        if isinstance(config, CP) and tuple(layer.strides) != (1, 1) and tuple(layer.dilation_rate) != (1, 1):
            return "strides and dilation together (DepthwiseConv2D allows only one)"
    if getattr(layer, "lora_enabled", False) or getattr(layer, "quantization_mode", None):
        return "quantized or LoRA layer"
    return ""


def _weight(layer) -> np.ndarray:
    """The layer's kernel in the core convention: Dense (out, in); Conv2D (C_out, C_in, kh, kw)."""
    k = np.asarray(layer.kernel, dtype=np.float64)
    return k.T if k.ndim == 2 else k.transpose(3, 2, 0, 1)


def select(model, config: LowRankConfig, layers: LayerFilter = None) -> tuple[list[str], dict[str, str]]:
    """Names of the layers ``config`` would factor, and ``{name: reason}`` for those it must skip.

    ``layers``: None (every Dense for SVD, every Conv2D for Tucker/CP), a layer
    name, a list of names, or ``fn(name, layer) -> bool``.
    """
    functional_of(model, f"decompose({type(config).__name__})")
    by_name = {layer.name: layer for layer in graph_layers(model)}
    return core.select_layers(by_name, config, layers, lambda l: type(l).__name__ == _target(config),
                              lambda l: _unsupported(l, config))


def plan(model, config: LowRankConfig, layers: LayerFilter = None) -> dict[str, core.Plan]:
    """What :func:`decompose` would do to each selected layer (same rule and numbers as PyTorch).

    Example:
        >>> from compresslib.keras.models import build
        >>> p = plan(build("mlp_wide"), SVD(rank=64))
        >>> {n: (q.params_after, q.accepted) for n, q in p.items()}
        {'fc1': (115712, True), 'fc2': (131072, True), 'fc3': (10240, False)}
    """
    check_config(config, LowRankConfig)
    names, _ = select(model, config, layers)
    by_name = {layer.name: layer for layer in graph_layers(model)}
    return core.plan_layers(config, {n: _weight(by_name[n]) for n in names},
                            explicit=layers is not None and not callable(layers))


def _bias(layer) -> Optional[np.ndarray]:
    return np.asarray(layer.bias) if layer.use_bias else None


def _apply(specs: list[tuple[Any, list[np.ndarray]]]) -> Callable[..., Any]:
    """A callable applying ``[(new_layer, weights), ...]`` in turn and then setting their weights."""
    def call(x, **kwargs):
        for layer, weights in specs:
            x = layer(x)
            layer.set_weights([w.astype(layer.weights[0].dtype) for w in weights])
        return x
    return call


def factor_svd(layer, rank: int) -> list[tuple[Any, list[np.ndarray]]]:
    """``Dense(m)`` → ``Dense(r, use_bias=False)`` → ``Dense(m, activation)`` from the truncated SVD."""
    a, b = core.svd_factors(_weight(layer), rank)
    dtype = layer.dtype_policy
    first = keras.layers.Dense(rank, use_bias=False, name=f"{layer.name}_svd0", dtype=dtype)
    last = keras.layers.Dense(layer.units, activation=layer.activation, use_bias=layer.use_bias,
                              name=f"{layer.name}_svd1", dtype=dtype)
    bias = _bias(layer)
    return [(first, [b.T]), (last, [a.T] + ([bias] if bias is not None else []))]


def factor_tucker(layer, ranks: tuple[int, int]) -> list[tuple[Any, list[np.ndarray]]]:
    """``Conv2D`` → 1×1 (R1) → k×k (R2; the original strides, padding, dilation) → 1×1 (C_out, activation).

    A full-rank mode (``R1 = C_in`` or ``R2 = C_out``) gets no 1×1 layer: its
    factor is absorbed into the k×k core (:func:`compresslib.core.lowrank.absorb_full_modes`).
    """
    first_w, core_w, last_w = core.absorb_full_modes(*core.tucker2(_weight(layer), ranks))
    dtype = layer.dtype_policy
    bias = _bias(layer)
    specs: list[tuple[Any, list[np.ndarray]]] = []
    if first_w is not None:
        first = keras.layers.Conv2D(first_w.shape[0], 1, use_bias=False, name=f"{layer.name}_tucker0", dtype=dtype)
        specs.append((first, [first_w.T[None, None]]))
    is_last = last_w is None
    middle = keras.layers.Conv2D(core_w.shape[0], layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                 dilation_rate=layer.dilation_rate, use_bias=is_last and bias is not None,
                                 activation=layer.activation if is_last else None,
                                 name=f"{layer.name}_tucker1", dtype=dtype)
    specs.append((middle, [core_w.transpose(2, 3, 1, 0)] + ([bias] if is_last and bias is not None else [])))
    if not is_last:
        last = keras.layers.Conv2D(layer.filters, 1, activation=layer.activation, use_bias=layer.use_bias,
                                   name=f"{layer.name}_tucker2", dtype=dtype)
        specs.append((last, [last_w.T[None, None]] + ([bias] if bias is not None else [])))
    return specs


def factor_cp(layer, rank: int) -> list[tuple[Any, list[np.ndarray]]]:
    """``Conv2D`` → 1×1 (R) → depthwise kh×1 → depthwise 1×kw → 1×1 (C_out, activation) (Lebedev et al. 2015)."""
    first_w, vert, horiz, last_w = core.cp(_weight(layer), rank)
    (kh, kw), (sh, sw), (dh, dw) = layer.kernel_size, layer.strides, layer.dilation_rate
    dtype = layer.dtype_policy
    first = keras.layers.Conv2D(rank, 1, use_bias=False, name=f"{layer.name}_cp0", dtype=dtype)
    vertical = keras.layers.DepthwiseConv2D((kh, 1), strides=(sh, 1), padding=layer.padding, dilation_rate=(dh, 1),
                                            use_bias=False, name=f"{layer.name}_cp1", dtype=dtype)
    horizontal = keras.layers.DepthwiseConv2D((1, kw), strides=(1, sw), padding=layer.padding,
                                              dilation_rate=(1, dw), use_bias=False, name=f"{layer.name}_cp2",
                                              dtype=dtype)
    last = keras.layers.Conv2D(layer.filters, 1, activation=layer.activation, use_bias=layer.use_bias,
                               name=f"{layer.name}_cp3", dtype=dtype)
    bias = _bias(layer)
    return [(first, [first_w.T[None, None]]), (vertical, [vert.T[:, None, :, None]]),
            (horizontal, [horiz.T[None, :, :, None]]),
            (last, [last_w.T[None, None]] + ([bias] if bias is not None else []))]


@register("decompose", "keras", SVD, Tucker, CP)
def decompose(model, config: LowRankConfig, *, layers: LayerFilter = None) -> keras.Model:
    """A rebuilt copy of ``model`` with the selected layers replaced by their low-rank factors.

    Args:
        model: a Keras 3 Sequential or functional model (nested ones included); it is not changed.
            A subclassed model is refused (its layers are wired by its own code).
        config: ``SVD(rank=|energy=|ratio=)``, ``Tucker(ranks=|energy=)`` or ``CP(rank=)``.
        layers: which layers (see :func:`select`); default every Dense (SVD) or Conv2D (Tucker, CP).

    Example:
        >>> import compresslib as cl
        >>> from compresslib.keras.models import build
        >>> d = decompose(build("lenet5"), cl.Tucker(ranks=(4, 8)), layers=["conv2"])
        >>> [l.name for l in d.layers][3:6]
        ['conv2_tucker0', 'conv2_tucker1', 'conv2_tucker2']
    """
    _, skipped = select(model, config, layers)
    plans = plan(model, config, layers)
    replacements = {}
    for name, p in plans.items():
        if not p.accepted:
            skipped[name] = p.reason
            continue
        factor = (factor_svd if isinstance(config, SVD)
                  else factor_tucker if isinstance(config, Tucker) else factor_cp)
        replacements[name] = (lambda f, r: (lambda layer: _apply(f(layer, r))))(factor, p.rank)
    verb = f"decompose({type(config).__name__})"
    if not replacements:
        warn_unchanged(verb, "no layer was factored: " + "; ".join(f"{n}: {why}" for n, why in skipped.items())
                       if skipped else f"it factors {_target(config)} layers and the model has none")
    else:
        core.warn_skipped(config, skipped)
    return rebuild(model, replacements)


def finetune(model, data: Any, epochs: int = 1, lr: float = 1e-4, **kwargs: Any) -> keras.Model:
    """A fine-tuned copy of a decomposed model (Adam, cross-entropy; ``compresslib.keras.train.fit``)."""
    from compresslib.keras.train import fit

    out = rebuild(model)
    fit(out, data, epochs=epochs, lr=lr, **kwargs)
    return rebuild(out)  # a fresh copy: no optimizer state left in the saved file
