"""Weight sharing for Keras 3 models: k-means codebooks per layer, and centroid fine-tuning.

* ``share_weights(model, WeightSharing(...))`` returns a copy whose
  Dense/Conv kernels hold only their layer's ``2**bits`` centroids and their
  pruned zeros. The k-means is :mod:`compresslib.core.sharing`, run on each
  kernel in PyTorch's output-major layout, so given the same weights both
  backends find the same codebooks. The result is an ordinary Keras model;
  :func:`compresslib.api.save` stores each shared kernel as codebook + indices.
* :class:`CentroidTuning` fine-tunes the centroids with the rule of Han et al.
  (2016): the gradient of a centroid is the sum of the gradients of the
  weights in its cluster. Keras has no per-variable gradient hook, so the
  model is rebuilt (``compresslib.keras.rebuild``) with each shared layer as a
  :class:`CentroidLayer` whose only trainable kernel variable is the codebook:
  the kernel is ``take(codebook, indices)`` and the gradient of a gather *is*
  that sum. Zeros index a constant 0 and stay zero. Train ``tuning.model``
  with ``compresslib.keras.train.fit`` (or ``model.fit``); ``finalize()``
  rebuilds the ordinary layers with the tuned values.

Example:
    >>> import keras, numpy as np, compresslib as cl
    >>> m = keras.Sequential([keras.Input((64,)), keras.layers.Dense(32)])
    >>> s = share_weights(m, cl.WeightSharing(bits=3))
    >>> len(np.unique(s.layers[-1].kernel.numpy())), m.layers[-1].kernel.shape == s.layers[-1].kernel.shape
    (8, True)
"""
from __future__ import annotations

import warnings
from typing import Any, Optional

import keras
import numpy as np
from keras import ops

from compresslib.configs import WeightSharing, check_config
from compresslib.core import sharing as core
from compresslib.keras.io import register as register_class
from compresslib.keras.pruning import PRUNABLE, from_output_major, to_output_major
from compresslib.keras.rebuild import rebuild
from compresslib.registry import Tuning, register, register_tuner

_QUIET = ("BatchNormalization", "LayerNormalization", "GroupNormalization")


def _flat_layers(model) -> list:
    out = []
    for layer in model.layers:
        out.extend(_flat_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def _layers(model, config: Optional[WeightSharing] = None, warn: bool = True) -> list:
    """The Dense/Conv layers weight sharing touches (those pruning touches), in model order; other
    layers with weights, except normalisation, are named in one warning."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    layers, skipped = [], []
    for layer in _flat_layers(model):
        kind = type(layer).__name__
        if kind in PRUNABLE and getattr(layer, "data_format", "channels_last") == "channels_last":
            layers.append(layer)
        elif kind not in _QUIET and layer.weights:
            skipped.append(f"{layer.name} ({kind})")
    if skipped and warn:
        warnings.warn(f"weight sharing skipped layers of unsupported kinds: {', '.join(skipped)}", stacklevel=3)
    if not layers:
        raise ValueError("model: has no Dense or Conv layer whose weights could be shared")
    if config is not None and config.per_layer_bits:
        unknown = sorted(set(config.per_layer_bits) - {l.name for l in layers})
        if unknown:
            raise ValueError(f"per_layer_bits: no Dense/Conv layers named {unknown}; "
                             f"they are {[l.name for l in layers]}")
    return layers


@register("quantize", "keras", WeightSharing)
def share_weights(model, config: WeightSharing, *, calibration_data: Any = None) -> keras.Model:
    """A copy of ``model`` whose Dense/Conv kernels are replaced by their k-means centroids.

    Example:
        >>> import compresslib as cl
        >>> m = cl.zoo.pretrained("lenet300_100", "keras")
        >>> s = share_weights(m, cl.WeightSharing(bits=4, per_layer_bits={"fc3": 2}))
        >>> [len(v) for v in codebooks(s).values()]
        [16, 16, 4]
    """
    check_config(config, WeightSharing)
    _layers(model, config)  # checks the model and the layer names before copying
    new = rebuild(model, {})  # a copy: every layer re-created from its config, weights copied
    for layer in _layers(new, config, warn=False):
        bits = config.bits_for(layer.name, conv=type(layer).__name__.startswith("Conv"))
        kernel = np.asarray(layer.kernel.numpy())
        shared = core.shared_weights(to_output_major(kernel), bits, init=config.init, seed=config.seed)
        layer.kernel.assign(from_output_major(shared).astype(kernel.dtype))
    return new


def codebooks(model) -> dict[str, np.ndarray]:
    """``{layer name: sorted distinct non-zero values}`` of each Dense/Conv kernel (its codebook once shared)."""
    return {l.name: core.clusters(np.asarray(l.kernel.numpy()))[0] for l in _layers(model, warn=False)}


@register_class
@keras.saving.register_keras_serializable(package="compresslib")
class CentroidLayer(keras.layers.Layer):
    """A Dense or Conv layer whose kernel is ``take([0, codebook...], indices)``: only the codebook trains.

    ``layer_config`` is the wrapped layer's ``{"class_name", "config"}``; ``indices`` (int32, the
    kernel's shape) hold 0 for a zero weight and ``1 + cluster`` otherwise.
    """

    def __init__(self, layer_config: dict, kernel_shape: tuple, k: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.layer_config = layer_config
        self.kernel_shape = tuple(kernel_shape)
        self.k = int(k)
        cfg = layer_config["config"]
        self._dense = layer_config["class_name"] == "Dense"
        self._activation = keras.activations.get(cfg.get("activation"))
        self._use_bias = bool(cfg.get("use_bias", True))
        self._units = self.kernel_shape[-1]

    def build(self, input_shape) -> None:
        self.codebook = self.add_weight(shape=(self.k,), initializer="zeros", name="codebook")
        self.indices = self.add_weight(shape=self.kernel_shape, initializer="zeros", dtype="int32",
                                       trainable=False, name="indices")
        self.bias = self.add_weight(shape=(self._units,), initializer="zeros", name="bias") if self._use_bias else None

    def kernel(self):
        """The current kernel: each weight its cluster's centroid, zeros where pruned."""
        table = ops.concatenate([ops.zeros((1,), dtype=self.codebook.dtype), self.codebook])
        return ops.take(table, self.indices)

    def call(self, inputs):
        kernel = self.kernel()
        if self._dense:
            y = ops.matmul(inputs, kernel)
        else:
            cfg = self.layer_config["config"]
            y = ops.conv(inputs, kernel, strides=cfg["strides"], padding=cfg["padding"],
                         dilation_rate=cfg["dilation_rate"], data_format=cfg.get("data_format") or "channels_last")
        if self.bias is not None:
            y = y + self.bias
        return self._activation(y)

    def get_config(self) -> dict:
        return {**super().get_config(), "layer_config": self.layer_config, "kernel_shape": list(self.kernel_shape),
                "k": self.k}


def _tunable(layer) -> bool:
    cfg = layer.get_config()
    return int(cfg.get("groups", 1)) == 1 and cfg.get("data_format", "channels_last") in (None, "channels_last")


class CentroidTuning:
    """Fine-tune the centroids of a shared Keras model (gradients of a cluster summed into its centroid).

    ``tuning.model`` is a twin of the model in which each shared layer is a
    :class:`CentroidLayer`; train it, then ``finalize()`` returns an ordinary
    model with the tuned centroids. Clusters are read from the kernel values
    (:func:`compresslib.core.sharing.clusters`). The input model is not changed.

    Example:
        >>> import compresslib as cl
        >>> from compresslib.keras import train
        >>> x, y = cl.datasets.load_mnist("test", layout="keras")
        >>> s = share_weights(cl.zoo.pretrained("lenet300_100", "keras"), cl.WeightSharing(bits=3))
        >>> tuning = CentroidTuning(s)
        >>> _ = train.fit(tuning.model, (x[:512], y[:512]), epochs=1, lr=1e-4)
        >>> tuned = tuning.finalize()
        >>> [len(v) for v in codebooks(tuned).values()], [l.name for l in tuned.layers] == [l.name for l in s.layers]
        ([8, 8, 8], True)
    """

    def __init__(self, model) -> None:
        self._names = []
        replacements = {}
        for layer in _layers(model):
            if not _tunable(layer):
                continue
            self._names.append(layer.name)
            replacements[layer.name] = _to_centroid_layer
        self.model = rebuild(model, replacements)

    def finalize(self) -> keras.Model:
        """An ordinary model (the original layer classes) with the tuned centroids."""
        return rebuild(self.model, {name: _from_centroid_layer for name in self._names})


def _to_centroid_layer(layer):
    kernel = np.asarray(layer.kernel.numpy())
    codebook, labels = core.clusters(kernel)
    new = CentroidLayer({"class_name": type(layer).__name__, "config": layer.get_config()}, kernel.shape,
                        max(1, codebook.size), name=layer.name)
    values = np.resize(codebook.astype(kernel.dtype), max(1, codebook.size))  # an all-zero kernel: one unused entry
    bias = np.asarray(layer.bias.numpy()) if getattr(layer, "use_bias", False) else None

    def apply(*args, **kwargs):
        out = new(*args, **kwargs)
        new.codebook.assign(values)
        new.indices.assign((labels + 1).astype(np.int32))
        if bias is not None:
            new.bias.assign(bias)
        return out

    return apply


def _from_centroid_layer(layer: CentroidLayer):
    cls = getattr(keras.layers, layer.layer_config["class_name"])
    new = cls.from_config(layer.layer_config["config"])
    weights = [np.asarray(ops.convert_to_numpy(layer.kernel()))]
    if layer.bias is not None:
        weights.append(np.asarray(layer.bias.numpy()))

    def apply(*args, **kwargs):
        out = new(*args, **kwargs)
        new.set_weights(weights)
        return out

    return apply


@register_tuner("keras", WeightSharing)
def keep_centroids(model, config: WeightSharing) -> Tuning:
    """Fine-tuning after weight sharing: only the centroids move (:class:`CentroidTuning`); the
    result has the same clusters, each at its tuned value."""
    tuning = CentroidTuning(model)
    return Tuning(tuning.model, [], lambda trained: tuning.finalize())


__all__ = ["share_weights", "codebooks", "CentroidTuning", "keep_centroids", "CentroidLayer"]
