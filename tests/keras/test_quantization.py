"""Keras quantization: LiteRT int8, Keras-native int8, half precision, QAT layers, errors, save/load.

Keras-native modes, half precision and QAT run under ``keras_device`` (CPU always, GPU where
TensorFlow sees one). The LiteRT modes (Int8Dynamic, Int8Static) convert and run on CPU
whatever the device (the LiteRT interpreter is CPU-only), so their tests have no device axis.
"""
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl
from compresslib.core import quant as cq
from compresslib.keras import quantization as kq
from compresslib.keras.train import evaluate, fit, predict


@pytest.fixture(scope="module")
def data():
    test = cl.datasets.load_mnist("test", layout="keras")
    train = cl.datasets.load_mnist("train", layout="keras")
    return (test[0][:1000], test[1][:1000]), train


@pytest.fixture(scope="module")
def lenet():
    return cl.zoo.pretrained("lenet5", framework="keras")


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="keras")


def _variables_on(model, keras_device):
    """Every variable of ``model`` lives on the device the test runs under."""
    want = f"{keras_device.upper()}:"
    where = {v.name: v.value.device for v in model.weights}
    assert all(want in d for d in where.values()), where


@pytest.fixture(scope="module")
def static_resnet(resnet, data):
    return cl.quantize(resnet, cl.Int8Static(), calibration_data=data[1][0][:128])


def test_litert_static_resnet(resnet, static_resnet, data, tmp_path):
    test, _ = data
    fresh = cl.zoo.pretrained("resnet8", framework="keras").get_weights()  # quantized already (fixture)
    assert all(np.array_equal(a, b) for a, b in zip(fresh, resnet.get_weights()))  # input untouched
    assert evaluate(resnet, test) - evaluate(static_resnet, test) <= 0.01
    r = cl.measure(static_resnet, data=test, latency=False)
    base = cl.measure(resnet, data=test, latency=False)
    assert r.file_format == ".tflite" and r.params == base.params
    assert base.file_bytes / r.file_bytes >= 3.8
    path = tmp_path / "q.clz"
    cl.save(static_resnet, path)
    loaded = cl.load(path)
    np.testing.assert_array_equal(loaded(test[0][:32]), static_resnet(test[0][:32]))


def test_litert_static_is_integer_inside(static_resnet):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=static_resnet.flatbuffer)
    dtypes = {d["dtype"] for d in interp.get_tensor_details()}
    assert np.int8 in dtypes and np.float32 in dtypes  # int8 inside, float interface


def test_litert_dynamic(lenet, data):
    test, _ = data
    q = cl.quantize(lenet, cl.Int8Dynamic())
    assert abs(evaluate(lenet, test) - evaluate(q, test)) <= 0.005
    assert q.predict(test[0][:7]).shape == (7, 10)


def test_keras_native_int8_dense_only(data, keras_device):
    test, _ = data
    m = cl.zoo.pretrained("lenet5", framework="keras")
    with pytest.warns(UserWarning, match=r"left in float.*Conv2D") as rec:
        q = cl.quantize(m, cl.WeightOnly(bits=8))
    assert len([r for r in rec if "left in float" in str(r.message)]) == 1
    dense = [l for l in q.layers if isinstance(l, keras.layers.Dense)]
    assert all(l.quantization_mode == "int8" for l in dense)
    assert all(str(l._kernel.dtype) == "int8" for l in dense)
    _variables_on(q, keras_device)
    assert abs(evaluate(m, test) - evaluate(q, test)) <= 0.005


@pytest.mark.parametrize("config,dtype", [(cl.Float16(), "float16"), (cl.BFloat16(), "bfloat16")])
def test_half(lenet, data, keras_device, config, dtype):
    test, _ = data
    q = cl.quantize(lenet, config)
    assert {str(w.dtype) for w in q.weights if "moving" not in w.path} == {dtype}
    _variables_on(q, keras_device)
    assert abs(evaluate(lenet, test) - evaluate(q, test)) <= 0.005


def test_errors(lenet):
    with pytest.raises(TypeError, match="config"):
        cl.quantize(lenet, cl.SVD(rank=2))
    with pytest.raises(ValueError, match="calibration_data"):
        cl.quantize(lenet, cl.Int8Static())
    with pytest.raises(ValueError, match="calibration_data"):
        cl.quantize(lenet, cl.Int8Static(), calibration_data=np.zeros((4, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="group_size"):
        cl.quantize(lenet, cl.WeightOnly(bits=8, group_size=32))
    with pytest.raises(TypeError, match="prepare_qat"):
        kq.convert(lenet)


def test_fake_quant_straight_through_gradient(keras_device):
    import tensorflow as tf

    x = tf.Variable(np.linspace(-1, 1, 11, dtype=np.float32))
    with tf.GradientTape() as tape:
        y = tf.reduce_sum(kq._fake_quant(x, 4, True, None) * 3.0)
    np.testing.assert_allclose(tape.gradient(y, x).numpy(), 3.0)  # rounding passes the gradient straight
    qt = cq.quantize_tensor(x.numpy(), 4)
    np.testing.assert_allclose(kq._fake_quant(x, 4, True, None).numpy(), qt.dequantize(), atol=1e-7)


def test_qat_4bit_train_convert_save(lenet, data, tmp_path, keras_device):
    test, train = data
    p = cl.prepare_qat(lenet, cl.QAT(weight_bits=4, activation_bits=8))
    kinds = {type(l).__name__ for l in p.layers}
    assert {"FakeQuantConv2D", "FakeQuantDense"} <= kinds
    fit(p, (train[0][:2000], train[1][:2000]), epochs=1, lr=5e-4)
    _variables_on(p, keras_device)  # trained where the test runs
    c = cl.convert(p)
    for layer in c.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            k = layer.get_weights()[0]
            flat = k.reshape(-1, k.shape[-1])
            assert max(len(np.unique(flat[:, j])) for j in range(flat.shape[1])) <= 16  # 4 bits per channel
            for col in flat.T:  # each channel is (integer in [-8, 7]) x (one step)
                amax = np.abs(col).max()
                ok = [np.allclose(col / (amax / n), np.rint(col / (amax / n)), atol=1e-3) for n in (7, 8)]
                assert amax == 0 or any(ok)
    assert evaluate(c, test) >= 0.95
    path = tmp_path / "qat.clz"
    cl.save(p, path)
    np.testing.assert_allclose(predict(cl.load(path), test[0][:32]), predict(p, test[0][:32]), atol=1e-5)


def test_sensitivity(lenet, data):
    test, _ = data
    s = kq.sensitivity(lenet, test, bits=2)
    assert len(s) == 5 and min(s.values()) < evaluate(lenet, test)


@pytest.mark.parametrize("config", [cl.WeightOnly(bits=8), cl.WeightOnly(bits=4), cl.Float16(), cl.BFloat16(),
                                    cl.Int8Dynamic()])
def test_save_load_round_trip(lenet, data, tmp_path, config):
    test, _ = data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        q = cl.quantize(lenet, config)
    path = tmp_path / "q.clz"
    cl.save(q, path)
    np.testing.assert_array_equal(predict(cl.load(path), test[0][:32]), predict(q, test[0][:32]))


# --------------------------------------------------------------------------- models compresslib did not write


def _attention_model():
    keras.utils.set_random_seed(0)
    i = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(40, 8, name="emb")(i)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(i, keras.layers.Dense(3, name="out")(h))


@pytest.mark.parametrize("bits", [8, 4])
def test_weight_only_attention_model_saves_and_loads(bits, tmp_path):
    m = _attention_model()
    q = cl.quantize(m, cl.WeightOnly(bits))
    modes = {l.name: l.quantization_mode for l in q._flatten_layers() if getattr(l, "quantization_mode", None)}
    assert {"emb", "query", "key", "value", "attention_output", "out"} <= set(modes)
    cl.save(q, tmp_path / "q.clz")
    back = cl.load(tmp_path / "q.clz")  # MultiHeadAttention's config does not say its projections are int
    x = np.arange(12, dtype=np.int32).reshape(2, 6)
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(q(x)))


def test_weight_only_without_dense_layers_is_refused():
    m = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3)], name="convs")
    with pytest.raises(ValueError, match="Dense, EinsumDense and Embedding layers; convs has none"):
        cl.quantize(m, cl.WeightOnly(8))


def test_qat_reaches_inside_nested_models_and_bare_ops():
    inner_in = keras.Input((8, 8, 1))
    c = keras.layers.Conv2D(4, 3, name="inner_conv")(inner_in)
    inner = keras.Model(inner_in, keras.ops.relu(c + 3.0) * (1.0 / 6.0), name="inner")  # hard-swish-like ops
    m = keras.Sequential([keras.Input((8, 8, 1)), inner, keras.layers.Flatten(), keras.layers.Dense(2, name="d")])
    q = cl.prepare_qat(m, cl.QAT())
    assert isinstance(q.get_layer("inner").get_layer("inner_conv"), kq.FakeQuantConv2D)
    assert isinstance(q.get_layer("d"), kq.FakeQuantDense)
    c = cl.convert(q)
    x = np.random.default_rng(0).normal(size=(2, 8, 8, 1)).astype(np.float32)
    assert c(x).shape == (2, 2) and type(c.get_layer("inner").get_layer("inner_conv")) is keras.layers.Conv2D


def test_qat_without_dense_or_conv_warns_that_nothing_changes():
    i = keras.Input((5,), dtype="int32")
    m = keras.Model(i, keras.layers.GlobalAveragePooling1D()(keras.layers.Embedding(9, 3)(i)))
    with pytest.warns(UserWarning, match=r"prepare_qat\(QAT\): the model comes back unchanged"):
        cl.prepare_qat(m, cl.QAT())


def test_qat_refuses_subclassed_models_by_class_name(subnet):
    with pytest.raises(TypeError, match="SubNet is a subclassed keras.Model"):
        cl.prepare_qat(subnet, cl.QAT())
