"""Rebuild a Keras 3 Sequential or functional model layer by layer, replacing or dropping some layers.

Used by low-rank decomposition (one Dense/Conv2D becomes two to four layers)
and BatchNorm folding (the BN layer disappears). Every layer that is kept is
re-created from its config and given a copy of its weights, so the new model
shares nothing with the original. Keras has no public "graph surgery" API;
this walks the graph with the functional model's own executor
(``Functional._run_through_graph``, which ``keras.models.clone_model`` uses too).

Example:
    >>> import keras
    >>> i = keras.Input((4,), name="x"); h = keras.layers.Dense(3, name="a")(i)
    >>> m = keras.Model(i, keras.layers.Dense(2, name="b")(h))
    >>> r = rebuild(m, {"a": lambda layer: (lambda x: keras.layers.Dense(3, name="a2")(x))})
    >>> [l.name for l in r.layers]
    ['x', 'a2', 'b']
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import keras
import numpy as np

from compresslib.keras.checks import require_graph

# layer name -> factory(layer) returning a callable(tensor, **kwargs) -> tensor
Replacements = dict[str, Callable[[Any], Callable[..., Any]]]


def copy_layer(layer) -> Callable[..., Any]:
    """A callable that applies a fresh copy of ``layer`` (same config, copied weights).

    ``layer`` may also be a bare Keras operation from the graph (``x + 3.0`` on a symbolic
    tensor records a ``keras.ops`` ``Add``, as ``keras.applications.MobileNetV3`` does): it
    has no weights and is re-created from its config.
    """
    if not isinstance(layer, keras.layers.Layer):
        return layer.__class__.from_config(layer.get_config())
    new = layer.__class__.from_config(layer.get_config())
    weights = [np.array(w) for w in layer.get_weights()]

    def apply(*args, **kwargs):
        out = new(*args, **kwargs)
        if weights:
            new.set_weights(weights)
        return out

    return apply


def identity(*args, **kwargs):
    """Drop a layer: pass its (single) input through."""
    return args[0]


def functional_of(model, what: str = "this") -> Any:
    """The functional graph of a Sequential model (or the model itself if already functional).

    ``TypeError`` naming the class (and ``what`` needs the graph) for a subclassed model.
    """
    if isinstance(model, keras.Sequential):
        graph = getattr(model, "_functional", None)
        if graph is None:
            raise ValueError("model: a Sequential model must be built with an Input to be rebuilt")
        return graph
    if type(model).__name__ != "Functional" and not hasattr(model, "_run_through_graph"):
        require_graph(model, what)
    return model


def is_graph_model(layer: Any) -> bool:
    """True for a Sequential or functional model (whose graph :func:`rebuild` can walk)."""
    return isinstance(layer, keras.Sequential) or type(layer).__name__ == "Functional"


def graph_layers(model) -> list:
    """Every layer of ``model``'s graph, descending into nested Sequential/functional models (not the nested
    models themselves), in graph order; bare ``keras.ops`` operations are left out."""
    out = []
    for layer in functional_of(model).layers:
        out.extend(graph_layers(layer) if is_graph_model(layer) else [layer])
    return out


def rebuild(model, replacements: Optional[Replacements] = None, name: Optional[str] = None,
            input_shapes: Optional[list[tuple]] = None, inline: bool = False) -> keras.Model:
    """A new functional model: layers named in ``replacements`` go through their factory, others are copied.

    Names are looked up inside nested Sequential/functional models too (a ``keras.applications``
    backbone inside a ``Sequential``): a nested model holding a named layer is rebuilt the same
    way and stays nested, under its own name. ``input_shapes``: new shapes (without the batch
    axis) for the model's inputs, e.g. to fix a sequence length. ``inline=True``: nested
    models are not kept as one layer; their layers join the new model's graph (layer names
    must then be unique across the whole model, or Keras raises ``ValueError``).

    A layer called at several places of the graph (a shared layer) is re-created or replaced once and
    the new one called at each place, so it stays shared: a replacement factory's callable must create
    its layers once, not on every call.
    """
    replacements = replacements or {}
    graph = functional_of(model)
    shapes = input_shapes or [t.shape[1:] for t in graph.inputs]
    if len(shapes) != len(graph.inputs):
        raise ValueError(f"input_shapes: {model.name} has {len(graph.inputs)} inputs, got {len(shapes)} shapes")
    inputs = [keras.Input(shape=shape, dtype=t.dtype, name=t._keras_history.operation.name)
              for shape, t in zip(shapes, graph.inputs)]

    made: dict[int, Any] = {}  # one new callable per operation: a layer called at two places stays shared

    def operation_fn(op):
        if id(op) not in made:
            made[id(op)] = new_operation(op)
        return made[id(op)]

    def new_operation(op):
        if op.name in replacements:
            return replacements[op.name](op)
        if inline and is_graph_model(op):
            sub = functional_of(op)
            return lambda *args, **kwargs: sub._run_through_graph(list(args), operation_fn=operation_fn)
        if is_graph_model(op) and any(layer.name in replacements for layer in graph_layers(op)):
            return rebuild(op, replacements)
        return copy_layer(op)

    outputs = graph._run_through_graph(inputs, operation_fn=operation_fn)
    single_in = not isinstance(model.inputs, (list, tuple)) or len(graph.inputs) == 1
    return keras.Model(inputs[0] if single_in else inputs, outputs, name=name or model.name)


def copy_model(model) -> keras.Model:
    """A new model with the same architecture and weights that shares nothing with ``model``.

    The one way compresslib copies a Keras model: Sequential and functional models
    are re-created from their config (no optimizer state comes along); subclassed
    models through ``keras.models.clone_model``, which needs their ``get_config``.

    Example:
        >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
        >>> c = copy_model(m)
        >>> c is not m and all((a == b).all() for a, b in zip(c.get_weights(), m.get_weights()))
        True
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    try:
        if isinstance(model, keras.Sequential) or type(model).__name__ == "Functional":
            new = type(model).from_config(model.get_config())
        else:
            new = keras.models.clone_model(model)
    except Exception as exc:  # noqa: BLE001 - subclassed models without a usable get_config
        why = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise TypeError(f"model: cannot copy the subclassed model {type(model).__name__}: Keras cannot re-create it "
                        f"from its config ({why[:160]}); give it get_config()/from_config() or build it as a "
                        f"functional model") from exc
    new.set_weights(model.get_weights())
    return new


def consumers(model) -> dict[str, int]:
    """How many times each layer's output is consumed (by other layers or as a model output)."""
    graph = functional_of(model)
    count: dict[str, int] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            for t in node.input_tensors:
                producer = t._keras_history.operation.name
                count[producer] = count.get(producer, 0) + 1
    for t in graph.outputs:
        producer = t._keras_history.operation.name
        count[producer] = count.get(producer, 0) + 1
    return count


def shared_layers(model) -> list[str]:
    """Names of the layers called at more than one place of ``model``'s graph (nested graphs included).

    Example:
        >>> i = keras.Input((4,)); d = keras.layers.Dense(4, name="shared")
        >>> shared_layers(keras.Model(i, d(d(i))))
        ['shared']
    """
    graph = functional_of(model)
    calls: dict[int, int] = {}
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
    names = [op.name for op in graph.operations if calls.get(id(op), 0) > 1]
    return names + [n for op in graph.operations if is_graph_model(op) for n in shared_layers(op)]


def producer(model, layer) -> Optional[Any]:
    """The layer whose output is ``layer``'s single input in ``model``'s graph (None if not exactly one)."""
    graph = functional_of(model)
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            if node.operation is layer:
                tensors = node.input_tensors
                return tensors[0]._keras_history.operation if len(tensors) == 1 else None
    return None
