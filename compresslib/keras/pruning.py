"""Pruning for Keras 3 models: unstructured magnitude, N:M, gradual, and structured.

* ``prune(model, Magnitude(...))`` / ``prune(model, NM(...))`` return a copy
  whose Dense/Conv kernels hold exact zeros (plain weights, no wrapper
  layers), so :func:`compresslib.save` can pack them. Masks come from
  :mod:`compresslib.core.masks`, computed in PyTorch's output-major layout, so
  both backends prune the same weights.
* ``prune(model, Structured(ratio))`` removes channels and neurons
  physically. No library does this for Keras 3 (tfmot rejects Keras 3
  models), so compresslib walks the model's graph itself
  (:mod:`compresslib.keras.graph`), keeps residual ``Add`` inputs matching,
  and rebuilds a smaller model from the edited config with sliced weights.
* :class:`GradualPruning` is a Keras callback for
  :func:`compresslib.keras.train.fit` that follows a sparsity schedule and
  keeps masks applied; :meth:`GradualPruning.finalize` returns a plain model.

Example:
    >>> import keras, compresslib as cl
    >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> p = cl.prune(m, cl.Magnitude(0.5))
    >>> int((p.layers[0].get_weights()[0] == 0).sum()), int((m.layers[0].get_weights()[0] == 0).sum())
    (16, 0)
"""
from __future__ import annotations

import warnings
from typing import Any, Iterable, Optional

import keras
import numpy as np

from compresslib.configs import NM, Magnitude, PruneConfig, Structured
from compresslib.core import masks as core_masks
from compresslib.core.schedules import Schedule, resolve
from compresslib.core.sensitivity import scan
from compresslib.keras import graph as kgraph
from compresslib.keras.checks import check_model, describe, require_graph, warn_unchanged
from compresslib.keras.rebuild import copy_model, is_graph_model, rebuild, shared_layers
from compresslib.registry import Tuning, register, register_tuner

PRUNABLE = ("Dense", "Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D")
_QUIET = ("BatchNormalization", "LayerNormalization", "GroupNormalization", "Normalization")


# --------------------------------------------------------------------------- layout
def to_output_major(kernel: np.ndarray) -> np.ndarray:
    """Keras kernel → PyTorch layout: Dense ``(in, out)`` → ``(out, in)``; Conv ``(k…, in, out)`` → ``(out, in, k…)``."""
    nd = kernel.ndim
    return np.transpose(kernel, (nd - 1, nd - 2) + tuple(range(nd - 2)))


def from_output_major(array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_output_major`."""
    nd = array.ndim
    return np.transpose(array, tuple(range(2, nd)) + (1, 0))


def _contracted_prefix(layer) -> int:
    """How many leading kernel axes an ``EinsumDense`` sums over (0 when they are not a prefix)."""
    lhs, out = layer.equation.split("->")
    kernel = lhs.split(",")[1]
    summed = [c not in out for c in kernel]
    n = summed.index(False) if False in summed else len(summed)
    return n if n and not any(summed[n:]) and n < len(kernel) else 0


def _is_prunable(layer) -> bool:
    kind = type(layer).__name__
    if kind == "EinsumDense":
        return _contracted_prefix(layer) > 0 and getattr(layer, "quantization_mode", None) is None
    return kind in PRUNABLE and getattr(layer, "data_format", "channels_last") == "channels_last" \
        and getattr(layer, "quantization_mode", None) is None


def _walk(layers, prunable: list, skipped: list, prefix: str = "") -> None:
    """Append ``(path, layer)`` for prunable layers; the path is the names from the model down ("mha1/query")."""
    for layer in layers:
        kind = type(layer).__name__
        inner = [l for l in layer._flatten_layers(include_self=False, recursive=False)]
        if _is_prunable(layer):
            prunable.append((prefix + layer.name, layer))
        elif inner and not isinstance(layer, (keras.layers.RNN, keras.layers.Bidirectional)):
            # nested models, MultiHeadAttention, custom layers, TimeDistributed
            _walk(inner, prunable, skipped, f"{prefix}{layer.name}/")
        elif kind not in _QUIET and layer.weights:
            skipped.append(f"{layer.name} ({kind})")


def _keys(found: list) -> list[str]:
    """Each layer's name, or its path inside the model where names repeat (the projections of two attention
    layers). The path is built from the model down, not Keras's ``layer.path``, which also holds any name
    scope that was open when the layer was created."""
    names = [l.name for _, l in found]
    return [l.name if names.count(l.name) == 1 else path for path, l in found]


def kernel_output_major(layer) -> np.ndarray:
    """The layer's kernel as PyTorch lays it out: ``(out, in, k…)``; an EinsumDense as ``(out, in)``."""
    kernel = np.asarray(layer.kernel.numpy())
    kind = type(layer).__name__
    if kind == "EinsumDense":
        n = _contracted_prefix(layer)
        return kernel.reshape(int(np.prod(kernel.shape[:n])), -1).T
    if kind == "DepthwiseConv2D":  # (kh, kw, C, M) -> torch's grouped layout (C·M, 1, kh, kw)
        kh, kw, c, m = kernel.shape
        return kernel.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
    return to_output_major(kernel)


def kernel_layout(layer, array: np.ndarray) -> np.ndarray:
    """Inverse of :func:`kernel_output_major` for ``layer``: an output-major array in the kernel's layout."""
    kind = type(layer).__name__
    if kind == "EinsumDense":
        return array.T.reshape(tuple(layer.kernel.shape))
    if kind == "DepthwiseConv2D":
        kh, kw, c, m = tuple(layer.kernel.shape)
        return array.reshape(c, m, kh, kw).transpose(2, 3, 0, 1)
    return from_output_major(array)


def prunable_layers(model, warn: bool = True) -> dict[str, Any]:
    """``{key: layer}`` of the layers whose kernels unstructured pruning touches, in model order.

    Dense, Conv1D/2D/3D, DepthwiseConv2D and EinsumDense (whose summed axes come first, as
    in MultiHeadAttention's projections), also inside nested models and layers that hold others;
    the key is the layer's name, or its path where names repeat. Layers of other kinds that
    own weights (except normalisation layers) are skipped with one warning naming them.
    """
    prunable: list = []
    skipped: list = []
    _walk(model.layers, prunable, skipped)
    if skipped and warn:
        warnings.warn(f"pruning skipped layers of unsupported kinds: {', '.join(skipped)}", stacklevel=3)
    return dict(zip(_keys(prunable), [layer for _, layer in prunable]))


def compute_masks(model, config: PruneConfig, sparsity: Optional[float] = None, warn: bool = True) -> dict[str, np.ndarray]:
    """Boolean masks ``{layer_key: mask}`` in each kernel's Keras layout (``sparsity`` overrides the config's)."""
    layers = prunable_layers(model, warn=warn)
    kernels = {n: kernel_output_major(l) for n, l in layers.items()}
    found = core_masks.masks_for(config, kernels, sparsity, warn)
    return {n: kernel_layout(layers[n], m) for n, m in found.items()}


def apply_masks(model, masks: dict[str, np.ndarray]) -> None:
    """Zero the masked-out kernel weights of ``model`` in place."""
    by_key = prunable_layers(model, warn=False)
    for name, mask in masks.items():
        kernel = by_key[name].kernel
        values = np.asarray(kernel.numpy())
        kernel.assign(np.where(mask, values, np.zeros((), values.dtype)))  # +0.0 (a product would leave -0.0)


@register("prune", "keras", Magnitude, NM)
def prune_unstructured(model, config: PruneConfig, *, example_input: Any = None,
                       ignored_layers: Iterable[str] = (), seed: int = 0) -> keras.Model:
    """A copy of ``model`` whose Dense/Conv kernels hold exact zeros (plain weights, no wrapper layers).

    ``ignored_layers``: layer names left dense. ``example_input`` and ``seed`` are unused
    (accepted so that every pruning config takes the same arguments in both frameworks).

    Example:
        >>> import keras, compresslib as cl
        >>> m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
        >>> int((cl.prune(m, cl.NM(2, 4)).layers[0].get_weights()[0] == 0).sum())
        16
    """
    check_model(model)
    if not prunable_layers(model, warn=False):
        raise ValueError(f"model: {type(config).__name__} prunes the kernels of Dense, Conv1D/2D/3D, "
                         f"DepthwiseConv2D and EinsumDense layers; {model.name} has none (its layers: "
                         f"{describe(sorted({type(l).__name__ for l in model._flatten_layers(include_self=False)}))})")
    new = copy_model(model)
    ignored = _check_ignored(new, ignored_layers)
    sparsity = resolve(config.schedule, config.sparsity)(0) if isinstance(config, Magnitude) else None
    masks = compute_masks(new, config, sparsity=sparsity)
    masks = {n: m for n, m in masks.items() if n not in ignored}
    if not any((~m).any() for m in masks.values()):
        warn_unchanged(type(config).__name__, "no weight was set to zero (every prunable layer is ignored, "
                       "or too small for this sparsity)")
    apply_masks(new, masks)
    return new


def _check_ignored(model, ignored_layers: Iterable[str]) -> set[str]:
    if isinstance(ignored_layers, str):
        raise TypeError("ignored_layers must be a list of layer names, not a string")
    names = set(ignored_layers)
    known = set(prunable_layers(model, warn=False)) | {l.name for l in model._flatten_layers(include_self=False)}
    unknown = sorted(names - known)
    if unknown:
        raise ValueError(f"ignored_layers: no layers named {unknown}; layers are {sorted(known)}")
    return names


@register("prune", "keras", Structured)
def prune_structured(model, config: Structured, *, example_input: Any = None,
                     ignored_layers: Iterable[str] = (), seed: int = 0) -> keras.Model:
    """A smaller copy of ``model`` with a ``ratio`` of the channels of every prunable group removed.

    compresslib walks the graph itself (:mod:`compresslib.keras.graph`): residual ``Add``
    inputs stay matched, output layers stay whole. ``example_input`` is unused (the
    graph is known without running the model).

    Example:
        >>> import keras, compresslib as cl
        >>> i = keras.Input((8,)); h = keras.layers.Dense(6, activation="relu", name="h")(i)
        >>> m = keras.Model(i, keras.layers.Dense(2, name="out")(h))
        >>> s = cl.prune(m, cl.Structured(0.5))
        >>> s.get_layer("h").units, tuple(s.get_layer("out").kernel.shape)
        (3, (3, 2))
    """
    return _structured(model, config, tuple(ignored_layers), seed)


# --------------------------------------------------------------------------- gradual
class GradualPruning(keras.callbacks.Callback):
    """Gradual magnitude pruning during fine-tuning: a callback for ``compresslib.keras.train.fit``.

    At the steps its schedule says (``config.schedule``, or constant at
    ``config.sparsity``), masks are recomputed from the current kernels;
    after every batch they are re-applied, so pruned weights stay zero.
    ``finalize(model)`` returns a plain copy.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.core.schedules import PolynomialDecay
        >>> from compresslib.keras import models, train
        >>> x, y = cl.datasets.load_mnist("test", layout="keras")
        >>> m = models.build("lenet300_100")
        >>> cb = GradualPruning(cl.Magnitude(0.8, schedule=PolynomialDecay(0.0, 0.8, 0, 8, 2)), m)
        >>> _ = train.fit(m, (x[:512], y[:512]), epochs=1, callbacks=[cb])
        >>> round(cb.sparsity, 2)
        0.8
    """

    def __init__(self, config: PruneConfig, model=None) -> None:
        super().__init__()
        if not isinstance(config, (Magnitude, NM)):
            raise TypeError(f"config must be Magnitude or NM, got {type(config).__name__}")
        self.config = config
        self.schedule: Schedule = resolve(getattr(config, "schedule", None), getattr(config, "sparsity", 0.0))
        self.masks: dict[str, np.ndarray] = {}
        self.sparsity = 0.0
        self.step = 0
        if model is not None:
            self.update(model, 0)

    def update(self, model, step: int) -> None:
        """Recompute the masks for ``step`` from the current kernels and apply them."""
        self.sparsity = self.schedule(step)
        self.masks = compute_masks(model, self.config, sparsity=self.sparsity, warn=step == 0)
        apply_masks(model, self.masks)

    def on_train_batch_end(self, batch: int, logs: Optional[dict] = None) -> None:
        self.step += 1
        if self.schedule.should_update(self.step) or not self.masks:
            self.update(self.model, self.step)
        else:
            apply_masks(self.model, self.masks)

    def state_dict(self) -> dict:
        """The masks, current sparsity and step count (what a ``fit`` checkpoint keeps to resume exactly)."""
        return {"masks": {n: np.array(m) for n, m in self.masks.items()}, "sparsity": float(self.sparsity),
                "step": int(self.step)}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned."""
        self.masks = {n: np.asarray(m, dtype=bool) for n, m in state["masks"].items()}
        self.sparsity, self.step = float(state["sparsity"]), int(state["step"])

    def finalize(self, model) -> keras.Model:
        """A plain copy of ``model`` with the current masks applied."""
        out = copy_model(model)
        if self.masks:
            apply_masks(out, self.masks)
        return out


def finalize(model) -> keras.Model:
    """A plain copy of ``model`` (compresslib's Keras pruning never leaves wrappers; kept for symmetry)."""
    return copy_model(model)


# --------------------------------------------------------------------------- sensitivity
def sensitivity(model, data, sparsities: Iterable[float] = (0.5, 0.7, 0.8, 0.9, 0.95),
                batch_size: int = 500) -> dict[str, list[float]]:
    """Accuracy against sparsity, one layer pruned at a time (one-shot magnitude, no fine-tuning).

    Returns ``{layer_name: [accuracy at each sparsity]}``; the model is not changed.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.keras import models
        >>> x, y = cl.datasets.load_mnist("test", layout="keras")
        >>> curves = sensitivity(models.build("lenet300_100"), (x[:200], y[:200]), sparsities=(0.5, 0.9))
        >>> sorted(curves), len(curves["fc1"])
        (['fc1', 'fc2', 'fc3'], 2)
    """
    from compresslib.keras.train import evaluate

    sparsities = [core_masks.check_sparsity(s, "sparsities") for s in sparsities]
    work = copy_model(model)
    layers = prunable_layers(work)

    def score(name: str, s: float) -> float:
        kernel = layers[name].kernel
        original = np.asarray(kernel.numpy()).copy()
        mask = kernel_layout(layers[name], core_masks.magnitude_mask(kernel_output_major(layers[name]), s))
        kernel.assign(np.where(mask, original, np.zeros((), original.dtype)))
        try:
            return evaluate(work, data, batch_size)
        finally:
            kernel.assign(original)

    return scan(layers, sparsities, score)


# --------------------------------------------------------------------------- structured
def _layer_entries(config: dict) -> dict[str, dict]:
    out = {}
    for entry in config["layers"]:
        cfg = entry.get("config", {})
        entry.pop("build_config", None)  # shapes are re-inferred from the (smaller) inputs
        out[cfg.get("name", entry.get("name"))] = entry
    return out


def structured_plan(model, config: Structured, ignored_layers: Iterable[str] = (), seed: int = 0,
                    warn: bool = True):
    """The graph and ``{group root: kept channel indices}`` that :func:`prune` would apply."""
    g = kgraph.analyse(model)
    if g.skipped and warn:
        warnings.warn(f"structured pruning kept whole the channels that reach unsupported layers: "
                      f"{', '.join(g.skipped)}", stacklevel=3)
    ignored = set(ignored_layers)
    unknown = ignored - set(g.nodes)
    if unknown:
        raise ValueError(f"ignored_layers: no layers named {sorted(unknown)}")
    rng = np.random.default_rng(seed)
    keep: dict[int, np.ndarray] = {}
    for root, producers in g.groups().items():
        if g.is_frozen(root) or ignored & set(producers):
            continue
        kernels = [to_output_major(np.asarray(g.nodes[p].layer.kernel.numpy())) for p in producers]
        scores = core_masks.group_scores(kernels, config.importance, rng)
        keep[root] = core_masks.channels_to_keep(scores, config.ratio, name=f"{producers[0]} (group {producers})")
    return g, keep


def _inlined(model) -> keras.Model:
    """``model`` with nested Sequential/functional models run inline (their layers join the outer graph)."""
    nested = [l.name for l in model.layers if is_graph_model(l)]
    if not nested:
        return model
    try:
        return rebuild(model, inline=True)
    except ValueError as exc:
        raise ValueError(f"model: Structured walks the channels through the nested model(s) {describe(nested)} "
                         f"by inlining them, which fails ({exc}); give their layers names unique across the "
                         f"whole model") from exc


def _structured(model, config: Structured, ignored: tuple, seed: int) -> keras.Model:
    require_graph(model, "Structured pruning")
    shared = shared_layers(model)
    if shared:  # the channel walk follows one call per layer; a second call would need the same channels too
        raise ValueError(f"model: Structured pruning cannot remove channels of a layer called at several places "
                         f"of the graph (shared layer(s) {describe(shared)}): its kernel would have to fit the "
                         f"channels of every call; use Magnitude or NM pruning, or give each call its own layer")
    original, model = model, _inlined(model)
    g, keep = structured_plan(model, config, ignored, seed, warn=False)
    if not keep:
        groups = describe(sorted({p for members in g.groups().values() for p in members}))
        why = f"every channel group ({groups or 'none'}) reaches a model output"
        if g.skipped:
            why += f" or a layer the channel walk keeps whole ({describe(g.skipped)})"
        if ignored:
            why += f", or is in ignored_layers"
        warn_unchanged("Structured", why)
        return copy_model(original)
    if g.skipped:
        warnings.warn(f"structured pruning kept whole the channels that reach unsupported layers: "
                      f"{describe(g.skipped)}", stacklevel=4)

    def kept(desc: Optional[kgraph.Desc]) -> Optional[np.ndarray]:
        if desc is None:
            return None
        return keep.get(g.find(desc.gid))

    config_dict = model.get_config()
    entries = _layer_entries(config_dict)
    for name, node in g.nodes.items():
        if node.kind in kgraph.PRODUCERS:
            k = kept(node.out_desc)
            if k is not None:
                entries[name]["config"]["filters" if node.kind == "Conv2D" else "units"] = int(len(k))
        elif node.kind == "Reshape" and node.out_desc is not None and kept(node.out_desc) is not None:
            target = list(entries[name]["config"]["target_shape"])
            entries[name]["config"]["target_shape"] = target[:-1] + [int(len(kept(node.out_desc)))]
    new = type(model).from_config(config_dict)
    for name, node in g.nodes.items():
        if node.layer is None or not getattr(node.layer, "weights", None):
            continue
        weights = [np.asarray(w) for w in node.layer.get_weights()]
        src = node.in_desc[0] if node.in_desc else None
        k_in = kept(src)
        if node.kind in kgraph.PRODUCERS:
            k_out = kept(node.out_desc)
            kernel = weights[0]
            if k_in is not None:
                in_axis = kernel.ndim - 2
                full = _channels_of(g, src)
                kernel = np.take(kernel, kgraph.rows_for(src, k_in, full), axis=in_axis)
            if k_out is not None:
                kernel = np.take(kernel, k_out, axis=-1)
                weights = [kernel] + [np.take(w, k_out, axis=-1) for w in weights[1:]]
            else:
                weights = [kernel] + weights[1:]
        elif node.kind in kgraph.DEPTHWISE and k_in is not None:
            weights = [np.take(weights[0], k_in, axis=2)] + [np.take(w, k_in, axis=-1) for w in weights[1:]]
        elif node.kind in kgraph.PER_CHANNEL and k_in is not None:
            weights = [np.take(w, k_in, axis=-1) for w in weights]
        new.get_layer(name).set_weights(weights)
    return new


def _channels_of(g: kgraph.Graph, desc: kgraph.Desc) -> int:
    """Channel count of the group ``desc`` belongs to (before pruning)."""
    layer = g.nodes[g.producer_of[desc.gid]].layer
    return int(layer.kernel.shape[-1])


@register_tuner("keras", Magnitude, NM)
def keep_masks(model, config: PruneConfig) -> Tuning:
    """Fine-tuning after unstructured or N:M pruning: :class:`GradualPruning` (a Keras callback) re-applies the
    masks during training, following ``config.schedule`` when there is one; the result keeps the zeros."""
    hook = GradualPruning(config, model)
    return Tuning(model, [hook], hook.finalize)


__all__ = ["prune_unstructured", "prune_structured", "GradualPruning", "keep_masks", "finalize", "sensitivity", "compute_masks", "apply_masks", "prunable_layers",
           "structured_plan", "to_output_major", "from_output_major"]
