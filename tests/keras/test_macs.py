"""Keras MACs from the layer calls of one forward pass: recurrent, attention, nested, subclassed, shared layers."""
import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl
from compresslib.keras.measure import macs_by_layer
from compresslib.keras.measure import layer_stats, native_file_bytes


def _macs(model, x) -> dict:
    return {l.name: l.macs for l in cl.measure(model, example_input=x, latency=False).layers if l.macs}


def test_recurrent_layers_per_step_and_gate_with_a_free_sequence_length():
    i = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(50, 8, name="emb")(i)
    h = keras.layers.Bidirectional(keras.layers.LSTM(16, return_sequences=True), name="bi")(h)
    h = keras.layers.GRU(12, name="gru")(h)
    h = keras.layers.Reshape((12, 1))(h)
    h = keras.layers.SimpleRNN(4, name="rnn")(h)
    m = keras.Model(i, keras.layers.Dense(3, name="out")(h))
    x = np.ones((2, 7), np.int32)  # the model was built for any length: the example's 7 steps count
    assert _macs(m, x) == {"bi": 2 * 7 * 4 * 16 * (8 + 16), "gru": 7 * 3 * 12 * (32 + 12),
                           "rnn": 12 * 1 * 4 * (1 + 4), "out": 4 * 3}


def test_multi_head_attention_projections_and_products():
    t, d, heads, key_dim = 6, 10, 2, 4
    i = keras.Input((t, d))
    a = keras.layers.MultiHeadAttention(heads, key_dim, name="mha")(i, i)
    m = keras.Model(i, a)
    projections = 3 * t * d * heads * key_dim + t * heads * key_dim * d
    products = 2 * heads * t * t * key_dim
    assert _macs(m, np.zeros((1, t, d), np.float32)) == {"mha": projections + products}


@keras.saving.register_keras_serializable(package="compresslib_tests")
class _Block(keras.layers.Layer):
    """A custom layer holding a Dense called twice (shared) and a Conv1D."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = keras.layers.Conv1D(4, 3, padding="same")
        self.proj = keras.layers.Dense(4)

    def call(self, x):
        return self.proj(self.proj(self.conv(x)))


class _Sub(keras.Model):
    def __init__(self):
        super().__init__()
        self.block = _Block()
        self.head = keras.layers.Dense(2)

    def call(self, x):
        return self.head(keras.ops.mean(self.block(x), axis=1))


def test_subclassed_model_and_custom_layer_are_seen_through_their_calls():
    m = _Sub()
    x = np.zeros((3, 5, 6), np.float32)
    m(x)
    counts = macs_by_layer(m, x)
    conv, proj = m.block.conv.name, m.block.proj.name
    # Conv1D: 5 positions × 4 filters × 6 channels × 3 taps; the shared Dense is counted at both calls
    assert counts == {conv: 5 * 4 * 6 * 3, proj: 2 * 5 * 4 * 4, m.head.name: 4 * 2}
    report = cl.measure(m, example_input=x, latency=False)
    assert report.macs == sum(counts.values()) and report.params == m.count_params()


def test_nested_model_and_time_distributed():
    inner = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(16, 3, name="c"),
                              keras.layers.GlobalAveragePooling2D()], name="inner")
    i = keras.Input((8, 8, 3))
    h = keras.layers.Reshape((4, 4))(inner(i))
    h = keras.layers.TimeDistributed(keras.layers.Dense(5, name="td_dense"), name="td")(h)
    m = keras.Model(i, keras.layers.Flatten()(h))
    got = _macs(m, np.zeros((2, 8, 8, 3), np.float32))
    assert got == {"c": 6 * 6 * 16 * 3 * 9, "td": 4 * 5 * 4}


def test_shapes_recorded_in_the_graph_when_the_model_cannot_run():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")])
    assert {l.name: l.macs for l in layer_stats(m, example=np.zeros((1, 5)))} == {"d": 12}


def test_native_size_of_a_model_keras_cannot_save_is_its_weights_file(opaque):
    m = opaque
    with pytest.raises(NotImplementedError):
        m.get_config()
    size, gz, fmt = native_file_bytes(m)
    assert fmt == ".weights.h5" and size > 15 * 4 and gz > 0
    r = cl.measure(m, example_input=np.zeros((2, 4), np.float32), latency=False)
    assert (r.params, r.macs) == (15, 12)
