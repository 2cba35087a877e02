"""LiteRT conversion of models the converter cannot take as they are: recurrent layers, token inputs, bad ops."""
import warnings

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl
from compresslib.keras import litert


def _recurrent(length):
    keras.utils.set_random_seed(0)
    i = keras.Input((length,), dtype="int32", name="tokens")
    h = keras.layers.Embedding(30, 8)(i)
    h = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True), name="bi")(h)
    h = keras.layers.GRU(8, name="gru")(h)
    return keras.Model(i, keras.layers.Dense(3)(h), name="rec")


def _tokens(n, length, seed=0):
    return np.random.default_rng(seed).integers(0, 30, (n, length)).astype(np.int32)


def test_recurrent_layers_are_unrolled_with_a_free_batch_size():
    m = _recurrent(6)
    before = [w.copy() for w in m.get_weights()]
    with pytest.warns(UserWarning, match=r"recurrent layer\(s\) bi, gru unrolled over 6 steps"):
        q = cl.quantize(m, cl.Int8Dynamic())
    assert "unrolled over 6 steps" in q.conversion and q.input_shape == (None, 6)
    x = _tokens(5, 6)
    ref = np.asarray(m(x))
    got = q(x)  # int32 token ids go in as int32; batch sizes 5 and 2 both run
    assert got.shape == (5, 3) and q(x[:2]).shape == (2, 3)
    assert np.abs(got - ref).max() < 0.05 * np.abs(ref).max() + 1e-3
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))
    r = cl.measure(q, example_input=x, latency=False)
    assert r.macs == cl.measure(m, example_input=x, latency=False).macs > 0


def test_a_free_sequence_length_needs_data_and_says_so():
    m = _recurrent(None)
    with pytest.raises(ValueError, match=r"recurrent layer\(s\) bi, gru .*fixed sequence length.*calibration_data"):
        cl.quantize(m, cl.Int8Dynamic())
    with pytest.warns(UserWarning, match="unrolled over 4 steps"):
        q = cl.quantize(m, cl.Int8Static(), calibration_data=_tokens(16, 4))
    assert q.input_shape == (None, 4) and q(_tokens(3, 4, seed=1)).shape == (3, 3)


def test_token_inputs_must_be_whole_numbers():
    m = _recurrent(4)
    with pytest.raises(ValueError, match="calibration_data: the model takes int32 inputs"):
        cl.quantize(m, cl.Int8Static(), calibration_data=np.full((4, 4), 0.5, np.float32))
    with pytest.raises(ValueError, match=r"calibration_data must be a non-empty batch of shape \(N, 4\)"):
        cl.quantize(m, cl.Int8Static(), calibration_data=_tokens(4, 5))


def test_ops_without_a_litert_kernel_are_named_with_the_way_out():
    i = keras.Input((3, 3))
    m = keras.Model(i, keras.ops.linalg.inv(i + 3.0 * keras.ops.eye(3)), name="inverse")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as info:
            cl.quantize(m, cl.Int8Dynamic())
    text = str(info.value)
    assert "LiteRT cannot convert inverse" in text and "MatrixInverse" in text
    assert "SELECT_TF_OPS" in text and "compresslib tried it" in text


def test_converter_messages_name_ops_and_layers():
    m = _recurrent(3)
    text = ("loc(callsite(fused[\"TensorListReserve:\", \"rec_1/gru_1/TensorArrayV2_1@__inference\"])): "
            "error: 'tf.TensorListReserve' op requires element_shape to be static")
    assert litert._ops_and_layers(text, m) == (["TensorListReserve"], ["gru"])


def test_saved_litert_model_keeps_its_conversion_note(tmp_path):
    m = _recurrent(5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = cl.quantize(m, cl.Int8Dynamic())
    cl.save(q, tmp_path / "q.clz")
    back = cl.load(tmp_path / "q.clz")
    x = _tokens(2, 5)
    assert back.conversion == q.conversion and np.array_equal(back(x), q(x))
