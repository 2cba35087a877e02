"""A walk over a Keras 3 Sequential or functional model: which channels must be removed together.

Nothing in Keras 3 (nor tfmot, which rejects Keras 3 models) removes channels
from a model with residual connections, so compresslib does it here.

Every Conv2D/Dense output starts its own *channel group*. Channels flow
unchanged through BatchNormalization, activations, Dropout, ZeroPadding2D,
pooling, global pooling, depthwise convolutions (``depth_multiplier=1``: their
kernels are sliced with the channels), a Reshape that only adds or drops unit axes
(``(C,)`` → ``(1, 1, C)`` in squeeze-and-excitation blocks) and element-wise
``keras.ops`` recorded in the graph (``x + 3.0`` in MobileNetV3's hard-swish). An ``Add`` (or another element-wise merge) unites
the groups of its inputs: the residual branch and its shortcut must keep the
same channels. ``Flatten`` turns ``C`` channels of an ``H×W`` map into
``H·W·C`` features in H, W, C order, so a Dense after it loses the rows
``(h·W + w)·C + c`` of every removed channel ``c``.

A group is *frozen* (kept whole) when it reaches a model output, or a layer
this walk does not understand (which is named in one warning).

Example:
    >>> import keras
    >>> i = keras.Input((8,)); h = keras.layers.Dense(6, name="a")(i)
    >>> m = keras.Model(i, keras.layers.Dense(2, name="b")(h))
    >>> g = analyse(m)
    >>> [sorted(members) for members in g.groups().values()], sorted(g.frozen_producers())
    ([['a'], ['b']], ['b'])
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import keras
import numpy as np

PRODUCERS = ("Conv2D", "Dense")
PASS_THROUGH = ("ReLU", "Activation", "Dropout", "SpatialDropout2D", "ZeroPadding2D", "MaxPooling2D",
                "AveragePooling2D", "GlobalAveragePooling2D", "GlobalMaxPooling2D", "LeakyReLU", "ELU",
                "Identity", "Cropping2D", "UpSampling2D", "GaussianNoise", "GaussianDropout",
                "SpatialDropout1D", "ZeroPadding1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
                "GlobalMaxPooling1D", "Cropping1D", "UpSampling1D")
PER_CHANNEL = ("BatchNormalization", "LayerNormalization")  # own weights sliced with their input's channels
DEPTHWISE = ("DepthwiseConv2D",)  # depth_multiplier 1: output channel c is input channel c (kernel axis 2)
MERGES = ("Add", "Subtract", "Multiply", "Maximum", "Minimum", "Average")
# bare keras.ops operations recorded in a functional graph (``x + 3.0``, ``x * y`` on symbolic
# tensors): element-wise, so channels pass through them (their other arguments must be scalars)
ELEMENTWISE_OPS = ("Add", "Subtract", "Multiply", "Divide", "TrueDivide", "Maximum", "Minimum", "Relu", "Relu6",
                   "Sigmoid", "HardSigmoid", "HardSwish", "HardSilu", "Silu", "Swish", "Tanh", "Gelu", "Elu",
                   "LeakyRelu", "Abs", "Negative", "Square", "Sqrt", "Exp", "Clip")


@dataclass
class Desc:
    """Channels of a tensor: owned by group ``gid``; ``spatial`` > 0 after a Flatten of an H×W map."""

    gid: int
    spatial: int = 0


@dataclass
class Node:
    name: str
    layer: Any
    kind: str
    inputs: list[str]
    in_desc: list[Optional[Desc]] = field(default_factory=list)
    out_desc: Optional[Desc] = None


class Graph:
    """Result of :func:`analyse`: nodes in topological order, union-find of channel groups, frozen groups."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.parent: list[int] = []
        self.producer_of: dict[int, str] = {}   # gid -> producing layer name
        self.frozen: set[int] = set()
        self.skipped: list[str] = []
        self.outputs: list[str] = []

    # union-find
    def new_group(self, producer: str) -> int:
        self.parent.append(len(self.parent))
        self.producer_of[len(self.parent) - 1] = producer
        return len(self.parent) - 1

    def find(self, g: int) -> int:
        while self.parent[g] != g:
            self.parent[g] = self.parent[self.parent[g]]
            g = self.parent[g]
        return g

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)

    def freeze(self, desc: Optional[Desc]) -> None:
        if desc is not None:
            self.frozen.add(desc.gid)

    def is_frozen(self, gid: int) -> bool:
        root = self.find(gid)
        return any(self.find(f) == root for f in self.frozen)

    def groups(self) -> dict[int, list[str]]:
        """root gid -> producing layer names (in topological order)."""
        out: dict[int, list[str]] = {}
        for gid, name in self.producer_of.items():
            out.setdefault(self.find(gid), []).append(name)
        return out

    def frozen_producers(self) -> set[str]:
        return {n for gid, n in self.producer_of.items() if self.is_frozen(gid)}


def _history_names(obj: Any) -> list[str]:
    """Layer names of every ``keras_history`` reference inside a node's serialized args."""
    out: list[str] = []
    if isinstance(obj, dict):
        if "keras_history" in obj.get("config", {}):
            out.append(obj["config"]["keras_history"][0])
        else:
            for v in obj.values():
                out.extend(_history_names(v))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(_history_names(v))
    return out


def is_walkable(model: Any) -> bool:
    """True for Sequential and functional models (their graphs are known); False for subclassed ones."""
    return isinstance(model, keras.Sequential) or type(model).__name__ == "Functional"


def _scalar_constants(obj: Any) -> bool:
    """True when every argument of a node other than its symbolic tensors is a Python number (or None)."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            return True
        return all(_scalar_constants(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return all(_scalar_constants(v) for v in obj)
    return obj is None or isinstance(obj, (bool, int, float, str))


def _op_kind(op: Any, entry: dict) -> str:
    """The walk's name for a bare keras.ops operation: a merge or pass-through when element-wise."""
    name = type(op).__name__
    nodes = entry.get("inbound_nodes", [])
    if name in ELEMENTWISE_OPS and len(nodes) == 1 and _scalar_constants(nodes[0].get("args", [])) \
            and not nodes[0].get("kwargs"):
        return "Add" if len(_history_names(nodes)) > 1 else "Identity"
    return f"keras.ops.{name}"


def _nodes(model) -> tuple[list[tuple[str, Any, list[str]]], list[str]]:
    if isinstance(model, keras.Sequential):
        names, prev = [], "__input__"
        out = [("__input__", None, [])]
        for layer in model.layers:
            out.append((layer.name, layer, [prev]))
            prev = layer.name
        return out, [prev]
    config = model.get_config()
    by_name = {op.name: op for op in model.operations}
    out = []
    for entry in config["layers"]:
        name = entry["name"]
        if len(entry.get("inbound_nodes", [])) > 1:
            out.append((name, by_name[name], ["__shared__"]))
            continue
        inputs = _history_names(entry.get("inbound_nodes", []))
        op = by_name[name]
        kind = None if isinstance(op, keras.layers.Layer) else _op_kind(op, entry)
        out.append((name, op, inputs, kind) if kind else (name, op, inputs))
    outputs = config["output_layers"]
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    return out, [o[0] for o in outputs]


def analyse(model) -> Graph:
    """Walk ``model`` and group the channels that must be removed together.

    Raises ``TypeError`` for a subclassed model (its graph cannot be read).
    """
    if not is_walkable(model):
        raise TypeError(f"model: structured pruning needs a Sequential or functional Keras model; "
                        f"{type(model).__name__} is subclassed and its graph cannot be walked")
    g = Graph()
    entries, g.outputs = _nodes(model)
    for name, layer, inputs, *op_kind in entries:
        kind = op_kind[0] if op_kind else "InputLayer" if layer is None else type(layer).__name__
        ins = [g.nodes[i].out_desc if i in g.nodes else None for i in inputs]
        node = Node(name, layer, kind, inputs, ins)
        g.nodes[name] = node
        first = ins[0] if ins else None
        if kind == "InputLayer":
            node.out_desc = None
        elif "__shared__" in inputs:
            g.skipped.append(f"{name} ({kind}, shared)")
            node.out_desc = None
        elif kind in PRODUCERS:
            ok = getattr(layer, "data_format", "channels_last") == "channels_last" and getattr(layer, "groups", 1) == 1
            if not ok or (kind == "Conv2D" and first is not None and first.spatial):
                g.skipped.append(f"{name} ({kind})")
                g.freeze(first)
                node.out_desc = Desc(g.new_group(name))
                g.freeze(node.out_desc)
            else:
                node.out_desc = Desc(g.new_group(name))
        elif kind in DEPTHWISE and layer.depth_multiplier == 1 and layer.data_format == "channels_last":
            node.out_desc = first
        elif (kind in PASS_THROUGH and getattr(layer, "data_format", "channels_last") == "channels_last") \
                or kind in PER_CHANNEL:
            if kind in PER_CHANNEL and first is not None and _norm_axis(layer) != -1:
                g.skipped.append(f"{name} ({kind}, axis {getattr(layer, 'axis', None)})")
                g.freeze(first)
            node.out_desc = first
        elif kind == "Reshape" and _keeps_channels(layer):
            node.out_desc = first
        elif kind == "Flatten":
            shape = layer.input.shape if hasattr(layer, "input") else None
            if first is not None and shape is not None and len(shape) == 4:
                node.out_desc = Desc(first.gid, int(shape[1]) * int(shape[2]))
            elif first is not None and shape is not None and len(shape) == 2:
                node.out_desc = first
            else:
                g.freeze(first)
                node.out_desc = None
        elif kind in MERGES:
            descs = [d for d in ins if d is not None]
            if len(descs) != len(ins) or len({d.spatial for d in descs}) > 1:
                for d in descs:
                    g.freeze(d)
            for d in descs[1:]:
                g.union(descs[0].gid, d.gid)
            node.out_desc = descs[0] if descs else None
        else:
            if any(d is not None for d in ins):
                g.skipped.append(f"{name} ({kind})")
            for d in ins:
                g.freeze(d)
            node.out_desc = None
    for out in g.outputs:
        g.freeze(g.nodes[out].out_desc)
    return g


def _keeps_channels(layer) -> bool:
    """True for a Reshape that only adds or drops unit axes before the channels: ``(C,)`` ↔ ``(1, 1, C)``
    (squeeze-and-excitation blocks reshape their pooled vector so)."""
    try:
        before = tuple(layer.input.shape[1:])
    except (AttributeError, ValueError):
        return False
    after = tuple(layer.target_shape)
    return bool(before) and bool(after) and before[-1] is not None and before[-1] == after[-1] \
        and all(d == 1 for d in before[:-1]) and all(d == 1 for d in after[:-1])


def _norm_axis(layer) -> int:
    axis = getattr(layer, "axis", -1)
    if isinstance(axis, (list, tuple)):
        if len(axis) != 1:
            return 0
        axis = axis[0]
    rank = len(layer.input.shape) if hasattr(layer, "input") else None
    if rank is not None and axis == rank - 1:
        return -1
    return axis


def rows_for(desc: Desc, keep: np.ndarray, channels: int) -> np.ndarray:
    """Feature indices kept after a Flatten (H, W, C order) when channels ``keep`` of ``channels`` stay."""
    if not desc.spatial:
        return keep
    return (np.arange(desc.spatial)[:, None] * channels + keep[None, :]).ravel()


__all__ = ["analyse", "Graph", "Node", "Desc", "rows_for", "is_walkable", "PRODUCERS", "PASS_THROUGH", "MERGES",
           "PER_CHANNEL", "DEPTHWISE"]
