"""``char_gpt`` in Keras 3: the twin of ``compresslib.torch.gpt`` (see :mod:`compresslib.core.gpt`).

A functional model of standard layers (``Embedding``, ``LayerNormalization``, ``Dense``,
``Add``) and two small weight-light layers of compresslib's own: :class:`PositionEmbedding`
(the learned positions, one table) and :class:`CausalAttention` (softmax attention of
query/key/value tensors under a causal mask; no weights). The projections ``q``, ``k``,
``v``, ``o``, ``fc1``, ``fc2`` and ``head`` are plain ``Dense`` layers, which the
calibrated quantizers and pruners handle. Layer names equal the torch module names.

Input: int32/int64 token ids (batch, T ≤ context); output: logits (batch, T, vocab).

Example:
    >>> import numpy as np
    >>> m = char_gpt()
    >>> tuple(m(np.zeros((2, 16), "int32")).shape), m.count_params() == CHAR_GPT.parameters()
    ((2, 16, 80), True)
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from compresslib.core.gpt import CHAR_GPT, LAYER_NORM_EPS, GPTSpec, check_ids
from compresslib.keras.io import register as register_class


@register_class
@keras.saving.register_keras_serializable(package="compresslib")
class PositionEmbedding(layers.Layer):
    """Adds a learned (context, d) position table's first T rows to a (batch, T, d) input."""

    def __init__(self, context: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.context = int(context)

    def build(self, input_shape) -> None:
        self.embeddings = self.add_weight(shape=(self.context, int(input_shape[-1])),
                                          initializer="random_normal", name="embeddings")

    def call(self, x):
        if isinstance(x.shape[1], int):  # known when called eagerly or traced for one length
            check_ids(tuple(x.shape[:2]), self.context)
        return x + self.embeddings[None, : ops.shape(x)[1]]

    def get_config(self) -> dict:
        return {**super().get_config(), "context": self.context}


@register_class
@keras.saving.register_keras_serializable(package="compresslib")
class CausalAttention(layers.Layer):
    """Multi-head softmax attention of ``[q, k, v]`` (each (batch, T, d)) under a causal mask."""

    def __init__(self, heads: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.heads = int(heads)

    def call(self, inputs):
        q, k, v = inputs
        t, d = ops.shape(q)[1], q.shape[-1]
        hd = d // self.heads

        def split(y):
            return ops.transpose(ops.reshape(y, (-1, t, self.heads, hd)), (0, 2, 1, 3))

        scores = ops.matmul(split(q), ops.transpose(split(k), (0, 1, 3, 2))) / math.sqrt(hd)
        mask = ops.tril(ops.ones((t, t), dtype="bool"))
        scores = ops.where(mask[None, None], scores, ops.full_like(scores, -1e9))
        out = ops.matmul(ops.softmax(scores, axis=-1), split(v))
        return ops.reshape(ops.transpose(out, (0, 2, 1, 3)), (-1, t, d))

    def get_config(self) -> dict:
        return {**super().get_config(), "heads": self.heads}


def gpt(spec: GPTSpec = CHAR_GPT) -> keras.Model:
    """A freshly initialised GPT of ``spec`` as a functional Keras model named ``spec.name``."""
    d = spec.d_model
    ids = keras.Input((None,), dtype="int32", name="ids")
    x = layers.Embedding(spec.vocab, d, name="tok")(ids)
    x = PositionEmbedding(spec.context, name="pos")(x)
    for i in range(spec.layers):
        n = f"blocks.{i}"
        h = layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=f"{n}.norm1")(x)
        qkv = [layers.Dense(d, name=f"{n}.{p}")(h) for p in "qkv"]
        att = CausalAttention(spec.heads, name=f"{n}.attn")(qkv)
        x = layers.Add(name=f"{n}.add1")([x, layers.Dense(d, name=f"{n}.o")(att)])
        h = layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name=f"{n}.norm2")(x)
        h = layers.Dense(4 * d, name=f"{n}.fc1")(h)
        h = layers.Activation("gelu", name=f"{n}.gelu")(h)
        x = layers.Add(name=f"{n}.add2")([x, layers.Dense(d, name=f"{n}.fc2")(h)])
    x = layers.LayerNormalization(epsilon=LAYER_NORM_EPS, name="norm")(x)  # "gelu": exact (erf), as torch
    return keras.Model(ids, layers.Dense(spec.vocab, name="head")(x), name=spec.name)


def char_gpt(num_classes: int = CHAR_GPT.vocab) -> keras.Model:
    """A freshly initialised ``char_gpt`` (``num_classes``: the vocabulary, only 80 accepted)."""
    if num_classes != CHAR_GPT.vocab:
        raise ValueError(f"num_classes must be the vocabulary size {CHAR_GPT.vocab} for char_gpt, "
                         f"got {num_classes!r}")
    return gpt(CHAR_GPT)


__all__ = ["CausalAttention", "PositionEmbedding", "char_gpt", "gpt"]
