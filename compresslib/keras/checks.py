"""Checks the Keras handlers share: is it a Keras model, what are its inputs, did a verb change anything.

A verb that returns a model identical to its input says so in one warning
(:func:`warn_unchanged`): a user who asks for structured pruning of an LSTM model
should hear that nothing was pruned, and why, rather than measure the same model twice.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    >>> input_specs(m)
    [((None, 3), 'float32')]
    >>> input_specs(object())
    Traceback (most recent call last):
    ...
    TypeError: model must be a Keras model, got object
"""
from __future__ import annotations

import warnings
from typing import Any

import keras
import numpy as np

Spec = tuple[tuple, str]  # (shape with None for unknown dimensions, dtype name)


def check_model(model: Any, argument: str = "model") -> keras.Model:
    """``model`` itself if it is a Keras model, else ``TypeError`` naming the argument."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"{argument} must be a Keras model, got {type(model).__name__}")
    return model


def is_subclassed(model: Any) -> bool:
    """True for a subclassed ``keras.Model`` (neither Sequential nor functional: its graph is its code)."""
    return isinstance(model, keras.Model) and not (isinstance(model, keras.Sequential)
                                                   or type(model).__name__ == "Functional")


def input_specs(model: Any, data: Any = None) -> list[Spec]:
    """The shape and dtype of each model input: from the graph of a functional/Sequential model, else
    from the shape a subclassed model was built with and the dtype of ``data`` (float32 without data)."""
    check_model(model)
    if not is_subclassed(model):
        graph = model._functional if isinstance(model, keras.Sequential) else model
        if getattr(graph, "inputs", None) is None:
            raise ValueError("model: a Sequential model needs an Input (or a first call) before it can be used here")
        return [(tuple(t.shape), str(t.dtype)) for t in graph.inputs]
    build = model.get_build_config() if model.built else None
    shape = (build or {}).get("input_shape")
    if shape is None and data is not None:
        shape = (None,) + tuple(np.shape(data)[1:])
    if shape is None:
        raise ValueError(f"model: the subclassed model {type(model).__name__} has not been called yet, so its input "
                         "shape is unknown; call it on one batch first")
    if isinstance(shape, dict) or (isinstance(shape, (list, tuple)) and shape and isinstance(shape[0], (list, tuple))):
        raise ValueError(f"model: {type(model).__name__} takes several inputs; this needs a model with one input")
    dtype = np.asarray(data).dtype.name if data is not None else "float32"
    return [((None,) + tuple(shape[1:]), dtype)]


def single_input(model: Any, what: str, data: Any = None) -> Spec:
    """The one input spec of ``model``; ``ValueError`` naming ``what`` for models with several inputs."""
    specs = input_specs(model, data)
    if len(specs) != 1:
        raise ValueError(f"model: {what} takes models with one input; {model.name} has {len(specs)}")
    return specs[0]


def check_batch(x: Any, spec: Spec, argument: str) -> np.ndarray:
    """``x`` (or the ``x`` of an ``(x, y)`` pair) as an array matching ``spec``, cast to its dtype.

    ``None`` dimensions of the spec accept any size; integer inputs (token ids) stay integers.
    """
    if isinstance(x, (tuple, list)) and len(x) == 2 and np.ndim(x[0]) >= 2:
        x = x[0]
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{argument} must be an array of inputs, got {type(x).__name__}") from exc
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{argument} must hold numbers, got dtype {arr.dtype}")
    shape, dtype = spec
    if arr.ndim != len(shape) or arr.shape[0] == 0 or any(
            want is not None and want != got for want, got in zip(shape[1:], arr.shape[1:])):
        want = ", ".join("N" if i == 0 else ("any" if d is None else str(d)) for i, d in enumerate(shape))
        raise ValueError(f"{argument} must be a non-empty batch of shape ({want}), got {arr.shape}")
    if np.dtype(dtype).kind in "iu" and arr.dtype.kind == "f" and not np.array_equal(arr, np.round(arr)):
        raise ValueError(f"{argument}: the model takes {dtype} inputs (e.g. token ids), got non-integer floats")
    return arr.astype(dtype, copy=False)


def probe_input(spec: Spec, size: int = 2) -> np.ndarray:
    """Zeros of ``spec``'s shape and dtype, ``None`` dimensions set to ``size`` (batch 1)."""
    shape, dtype = spec
    return np.zeros((1,) + tuple(size if d is None else int(d) for d in shape[1:]), dtype=dtype)


def warn_unchanged(verb: str, why: str, stacklevel: int = 3) -> None:
    """One warning that ``verb`` returns a model equal to its input, saying why."""
    warnings.warn(f"{verb}: the model comes back unchanged: {why}", UserWarning, stacklevel=stacklevel)


def require_graph(model: Any, what: str) -> None:
    """``TypeError`` for a subclassed model, naming its class, for verbs that rewire a model's graph."""
    check_model(model)
    if is_subclassed(model):
        raise TypeError(f"model: {what} rewires the model's layers, which needs a Sequential or functional Keras "
                        f"model; {type(model).__name__} is a subclassed keras.Model whose layers are connected by "
                        f"its own call() code. Build it with the functional API (keras.Model(inputs, outputs)) "
                        f"to use {what}")


def leaf_layers(model: Any) -> list:
    """The layers that do the work: nested models and layers holding others (MultiHeadAttention, a custom
    layer, TimeDistributed) are opened; a recurrent layer or ``Bidirectional`` counts as one (not its cells)."""
    out = []
    for layer in model._flatten_layers(include_self=False, recursive=False):
        inner = list(layer._flatten_layers(include_self=False, recursive=False))
        if inner and not isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)):
            out.extend(leaf_layers(layer))
        else:
            out.append(layer)
    return out


def describe(names: list[str], limit: int = 8) -> str:
    """``a, b, c`` or ``a, b, … and 12 more``."""
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", … and {len(names) - limit} more"


__all__ = ["check_model", "is_subclassed", "input_specs", "single_input", "check_batch", "probe_input",
           "warn_unchanged", "require_graph", "leaf_layers", "describe", "Spec"]
