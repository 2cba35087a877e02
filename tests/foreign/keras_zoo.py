"""Keras 3 models compresslib did not write, built from code with random weights (offline, small inputs).

Each entry builds a :class:`Case`: ``make()`` gives a fresh model (random weights from a
fixed seed), one input batch and calibration batches, as NumPy arrays in the dtype the
model takes (``int32`` token ids for the text models).

* ``keras_mobilenet_v3``: ``keras.applications.MobileNetV3Small`` at 32×32 (Rescaling,
  hard-swish, squeeze-and-excitation ``Multiply``, depthwise convolutions, logits out).
* ``keras_transfer_mobilenet_v2``: the transfer-learning pattern, a ``keras.applications``
  backbone (MobileNetV2, no top, average pooling) *nested* in a ``Sequential`` with a new head.
* ``keras_efficientnet_b0``: ``keras.applications.EfficientNetB0`` at 32×32 (Normalization,
  swish, SE blocks, stochastic depth ``Dropout`` on residuals).

The last two are in the full matrix only (:data:`FULL`; CI runs :data:`NAMES`): a second
and third ``keras.applications`` network would double the matrix's time, and what they add
(a nested model) is also tested on small models in ``tests/keras``.
* ``keras_recurrent``: the IMDB-style text classifier: ``Embedding`` →
  ``Bidirectional(LSTM)`` → ``GRU`` → ``Dense``, variable sequence length (``Input((None,))``).
* ``keras_transformer``: a Transformer block from built-in layers: ``Embedding``,
  ``MultiHeadAttention``, residual ``Add``, ``LayerNormalization``, feed-forward ``Dense``,
  ``GlobalAveragePooling1D``.
* ``keras_subclassed``: a subclassed ``keras.Model`` with ``get_config`` (Conv2D, BatchNorm,
  Dense inside ``call``).
* ``keras_subclassed_noconfig``: the same, taking a layer object in ``__init__`` and
  without ``get_config``: Keras cannot re-create it from a config.

Example:
    >>> from tests.foreign.keras_zoo import case
    >>> c = case("keras_transformer")              # doctest: +SKIP
    >>> c.make()(c.example).shape                  # doctest: +SKIP
    (4, 3)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras
import numpy as np

from compresslib.io import register_class


@dataclass
class Case:
    name: str
    make: Callable[[], keras.Model]
    example: np.ndarray
    calibration: np.ndarray
    kind: str  # "image" | "raw_image" | "text" | "subclassed"


def calibrate_batchnorm(model: keras.Model, x: np.ndarray) -> None:
    """Set every BatchNorm's moving statistics to those of its input on ``x`` (one training-mode pass with
    momentum 0). Freshly initialised networks this deep shrink activations to ~1e-11 by the logits,
    where every output agrees with every other; with the statistics of real inputs they stay O(1)."""
    norms = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for layer in norms:
        layer.momentum = 0.0
    model(x, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


def _seeded(builder: Callable[[], keras.Model], calibration: np.ndarray, seed: int = 0) -> Callable[[], keras.Model]:
    def make() -> keras.Model:
        keras.utils.set_random_seed(seed)
        model = builder()
        calibrate_batchnorm(model, calibration)
        return model
    return make


def _tokens(n: int, length: int = 12, vocab: int = 100, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(1, vocab, size=(n, length)).astype(np.int32)


def _pixels(n: int, size: int = 32, seed: int = 1, raw: bool = False) -> np.ndarray:
    """Images: raw 0..255 values for applications that rescale inside, else roughly unit scale."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, size, size, 3)) if raw else rng.normal(size=(n, size, size, 3))
    return x.astype(np.float32)


# --------------------------------------------------------------------------- keras.applications

def mobilenet_v3() -> keras.Model:
    return keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), alpha=0.75, weights=None, classes=10,
                                               classifier_activation=None, dropout_rate=0.0)


def transfer_mobilenet_v2() -> keras.Model:
    base = keras.applications.MobileNetV2(input_shape=(32, 32, 3), alpha=0.35, include_top=False, pooling="avg",
                                          weights=None)
    return keras.Sequential([keras.Input((32, 32, 3)), base, keras.layers.Dense(10, name="head")],
                            name="transfer_mobilenet_v2")


def efficientnet_b0() -> keras.Model:
    return keras.applications.EfficientNetB0(input_shape=(32, 32, 3), weights=None, classes=10,
                                             classifier_activation=None)


# --------------------------------------------------------------------------- text

def recurrent() -> keras.Model:
    tokens = keras.Input((None,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, 16, name="embed")(tokens)
    h = keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True), name="bilstm")(h)
    h = keras.layers.GRU(16, name="gru")(h)
    return keras.Model(tokens, keras.layers.Dense(3, name="head")(h), name="recurrent")


def transformer(length: int = 12, dim: int = 32) -> keras.Model:
    tokens = keras.Input((length,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(100, dim, name="embed")(tokens)
    a = keras.layers.MultiHeadAttention(num_heads=2, key_dim=16, name="attention")(h, h)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="norm1")(keras.layers.Add(name="res1")([h, a]))
    f = keras.layers.Dense(64, activation="relu", name="ffn1")(h)
    f = keras.layers.Dense(dim, name="ffn2")(f)
    h = keras.layers.LayerNormalization(epsilon=1e-6, name="norm2")(keras.layers.Add(name="res2")([h, f]))
    h = keras.layers.GlobalAveragePooling1D(name="pool")(h)
    h = keras.layers.Dense(16, activation="relu", name="pre_head")(h)
    return keras.Model(tokens, keras.layers.Dense(3, name="head")(h), name="transformer")


# --------------------------------------------------------------------------- subclassed

@register_class  # as a user would: compresslib's loader trusts only what is registered with it
@keras.saving.register_keras_serializable(package="compresslib_tests")
class SmallConvNet(keras.Model):
    """A subclassed model with ``get_config``: conv → BN → ReLU → conv → pool → dense."""

    def __init__(self, width: int = 8, classes: int = 10, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width, self.classes = width, classes
        self.conv1 = keras.layers.Conv2D(width, 3, strides=2, padding="same", use_bias=False)
        self.bn1 = keras.layers.BatchNormalization()
        self.conv2 = keras.layers.Conv2D(2 * width, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(classes)

    def call(self, x, training=None):
        h = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        return self.head(self.pool(self.conv2(h)))

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width, "classes": self.classes}


class OpaqueConvNet(keras.Model):
    """A subclassed model without ``get_config`` whose ``__init__`` takes a layer object."""

    def __init__(self, head: keras.layers.Layer) -> None:
        super().__init__()
        self.conv = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = head

    def call(self, x):
        return self.head(self.pool(self.conv(x)))


def _built(model: keras.Model, shape: tuple) -> keras.Model:
    model(np.zeros((1,) + shape, np.float32))  # subclassed models create their weights on the first call
    return model


def subclassed() -> keras.Model:
    return _built(SmallConvNet(name="small_convnet"), (32, 32, 3))


def subclassed_noconfig() -> keras.Model:
    return _built(OpaqueConvNet(keras.layers.Dense(10)), (32, 32, 3))


# --------------------------------------------------------------------------- round 2 families (issue 23)

def shared_layers() -> keras.Model:
    """One layer instance called at two places: a shared Conv2D applied twice in a chain, and a shared Dense
    applied on two branches whose outputs are added."""
    image = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, padding="same", name="stem")(image)
    h = keras.layers.BatchNormalization(name="stem_bn")(h)
    shared_conv = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="shared_conv")
    h = shared_conv(shared_conv(h))
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    shared_dense = keras.layers.Dense(16, activation="relu", name="shared_dense")
    left = shared_dense(keras.layers.Dense(16, name="left")(h))
    right = shared_dense(keras.layers.Dense(16, name="right")(h))
    h = keras.layers.Add(name="merge")([left, right])
    return keras.Model(image, keras.layers.Dense(5, name="head")(h), name="shared_layers")


def functional_lstm() -> keras.Model:
    """A functional sequence classifier over float features: LSTM → Dense (no Embedding)."""
    series = keras.Input((10, 6), name="series")
    h = keras.layers.LSTM(16, name="lstm")(series)
    return keras.Model(series, keras.layers.Dense(3, name="head")(h), name="functional_lstm")


def separable_transposed() -> keras.Model:
    """Xception/NASNet-style ``SeparableConv2D`` blocks and a decoder's ``Conv2DTranspose``."""
    image = keras.Input((16, 16, 3), name="image")
    h = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="stem")(image)
    h = keras.layers.SeparableConv2D(16, 3, padding="same", activation="relu", name="sep1")(h)
    h = keras.layers.SeparableConv2D(16, 3, padding="same", depth_multiplier=2, name="sep2")(h)
    h = keras.layers.Conv2DTranspose(8, 3, strides=2, padding="same", activation="relu", name="up")(h)
    h = keras.layers.GlobalAveragePooling2D(name="pool")(h)
    return keras.Model(image, keras.layers.Dense(4, name="head")(h), name="separable_transposed")


@register_class
@keras.saving.register_keras_serializable(package="compresslib_tests")
class PartialConfigNet(keras.Model):
    """A subclassed model whose ``get_config`` leaves out a constructor argument (``classes``): Keras's
    ``from_config`` cannot re-create it."""

    def __init__(self, width: int, classes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.width = width
        self.conv = keras.layers.Conv2D(width, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(classes)

    def call(self, x):
        return self.head(self.pool(self.conv(x)))

    def get_config(self) -> dict:
        return {**super().get_config(), "width": self.width}  # "classes" is missing


def partial_config() -> keras.Model:
    return _built(PartialConfigNet(8, 10, name="partial_config"), (16, 16, 3))


@register_class
@keras.saving.register_keras_serializable(package="compresslib_tests")
class TiedHead(keras.layers.Layer):
    """Next-token logits from the embedding matrix, ``h @ E.T``: the layer holds the ``Embedding`` it reads,
    so one variable belongs to two layers (the Keras form of a language model's tied output layer)."""

    def __init__(self, embedding: keras.layers.Embedding, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.embedding = embedding

    def call(self, h):
        return keras.ops.matmul(h, keras.ops.transpose(self.embedding.embeddings))


@register_class
@keras.saving.register_keras_serializable(package="compresslib_tests")
class TiedLM(keras.Model):
    """Embedding → Dense(ReLU) → :class:`TiedHead` over the same embedding matrix (100 × 32)."""

    def __init__(self, vocab: int = 100, dim: int = 32, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab, self.dim = vocab, dim
        self.embed = keras.layers.Embedding(vocab, dim, name="embed")
        self.mix = keras.layers.Dense(dim, activation="relu", name="mix")
        self.head = TiedHead(self.embed, name="head")

    def call(self, ids):
        return self.head(self.mix(self.embed(ids)))

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab": self.vocab, "dim": self.dim}


def tied_lm() -> keras.Model:
    model = TiedLM(name="tied_lm")
    model(np.zeros((1, 12), np.int32))
    return model


# --------------------------------------------------------------------------- the zoo

_BUILDERS = {  # name: (builder, kind); "raw_image": 0..255 pixels (the model rescales them itself)
    "keras_mobilenet_v3": (mobilenet_v3, "raw_image"),
    "keras_transfer_mobilenet_v2": (transfer_mobilenet_v2, "image"),
    "keras_efficientnet_b0": (efficientnet_b0, "raw_image"),
    "keras_recurrent": (recurrent, "text"),
    "keras_transformer": (transformer, "text"),
    "keras_subclassed": (subclassed, "subclassed"),
    "keras_subclassed_noconfig": (subclassed_noconfig, "subclassed"),
}
FULL = tuple(_BUILDERS)
# issue 23's families, tested verb by verb in tests/foreign/test_round2_keras.py
ROUND2 = {"keras_shared_layers": (shared_layers, "image16"), "keras_functional_lstm": (functional_lstm, "series"),
          "keras_separable_transposed": (separable_transposed, "image16"),
          "keras_partial_config": (partial_config, "image16"), "keras_tied_lm": (tied_lm, "text")}
# What CI runs: one keras.applications network; each LiteRT conversion of one takes 15-25 CPU-seconds here
NAMES = tuple(n for n in FULL if n not in ("keras_transfer_mobilenet_v2", "keras_efficientnet_b0"))


def case(name: str) -> Case:
    """The :class:`Case` for ``name`` (one of :data:`FULL`)."""
    if name in ROUND2:
        builder, kind = ROUND2[name]
        rng = np.random.default_rng(1)
        shape = (10, 6) if kind == "series" else (16, 16, 3)
        example, calibration = (rng.normal(size=(n,) + shape).astype(np.float32) for n in (4, 32))
        if kind == "text":
            example, calibration = _tokens(4), _tokens(32, seed=2)
        return Case(name, _seeded(builder, calibration), example, calibration, kind)
    if name not in _BUILDERS:
        raise ValueError(f"name must be one of {FULL + tuple(ROUND2)}, got {name!r}")
    builder, kind = _BUILDERS[name]
    if kind == "text":
        example, calibration = _tokens(4), _tokens(32, seed=2)
    else:
        example, calibration = _pixels(4, raw=kind == "raw_image"), _pixels(32, seed=2, raw=kind == "raw_image")
    return Case(name, _seeded(builder, calibration), example, calibration, kind)
