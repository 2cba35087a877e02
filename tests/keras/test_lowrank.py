"""Keras low-rank decomposition: factors reproduce the truncated weights, cost rule, errors, save/load."""
import warnings

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl
from compresslib.core import lowrank as L
from compresslib.keras import lowrank as kl
from compresslib.keras.models import build
from compresslib.keras.rebuild import rebuild


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="keras")


def _weights(model):
    return [np.array(w) for w in model.get_weights()]


def _with_kernel(model, name, kernel_oihw_or_oi):
    """A copy of ``model`` whose layer ``name`` has the given kernel (core layout)."""
    ref = rebuild(model)
    layer = ref.get_layer(name)
    k = np.asarray(kernel_oihw_or_oi)
    k = k.T if k.ndim == 2 else k.transpose(2, 3, 1, 0)
    layer.set_weights([k.astype("float32")] + layer.get_weights()[1:])
    return ref


def test_svd_equals_the_truncated_matrix(keras_device):
    keras.utils.set_random_seed(0)
    m = build("mlp_wide")
    before = _weights(m)
    d = cl.decompose(m, cl.SVD(rank=64), layers=["fc1", "fc2"])
    assert [l.name for l in d.layers] == ["input", "flatten", "fc1_svd0", "fc1_svd1", "fc2_svd0", "fc2_svd1", "fc3"]
    assert d.get_layer("fc1_svd0").use_bias is False and d.get_layer("fc1_svd1").activation.__name__ == "relu"
    ref = rebuild(m)
    for name in ("fc1", "fc2"):
        a, b = L.svd_factors(np.asarray(m.get_layer(name).kernel, dtype=np.float64).T, 64)
        ref = _with_kernel(ref, name, a @ b)
    x = np.random.default_rng(0).normal(size=(8, 28, 28, 1)).astype("float32")
    np.testing.assert_allclose(d(x), ref(x), atol=1e-4, rtol=1e-4)
    assert np.abs(np.asarray(d(x)) - np.asarray(m(x))).max() > 1e-3
    for a, b in zip(_weights(m), before):
        np.testing.assert_array_equal(a, b)
    assert d.count_params() == 64 * (784 + 1024) + 1024 + 64 * (1024 + 1024) + 1024 + 1024 * 10 + 10


def test_tucker_equals_the_reconstructed_kernel(resnet, keras_device):
    name = "layer3_conv1"                                   # 3×3, stride 2 after ZeroPadding2D
    d = cl.decompose(resnet, cl.Tucker(ranks=(16, 24)), layers=[name])
    shapes = [tuple(d.get_layer(f"{name}_tucker{i}").kernel.shape) for i in range(3)]
    assert shapes == [(1, 1, 32, 16), (3, 3, 16, 24), (1, 1, 24, 64)]
    assert tuple(d.get_layer(f"{name}_tucker1").strides) == (2, 2)
    kernel = np.asarray(resnet.get_layer(name).kernel, dtype=np.float64).transpose(3, 2, 0, 1)
    ref = _with_kernel(resnet, name, L.tucker2_reconstruct(*L.tucker2(kernel, (16, 24))))
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(d(x, training=False), ref(x, training=False), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("ranks,layers", [((6, 8), ["c_tucker1", "c_tucker2"]),
                                          ((3, 16), ["c_tucker0", "c_tucker1"])])
def test_tucker1_drops_the_full_rank_factor(keras_device, ranks, layers):
    keras.utils.set_random_seed(0)
    inp = keras.Input((9, 9, 6))
    conv = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c")
    m = keras.Model(inp, conv(inp))
    m.get_layer("c").bias.assign(np.random.default_rng(2).normal(size=16).astype("float32"))
    d = cl.decompose(m, cl.Tucker(ranks=ranks))
    assert [l.name for l in d.layers[1:]] == layers
    last = d.get_layer(layers[-1])
    assert last.use_bias and last.activation.__name__ == "relu"
    assert d.get_layer(layers[0]).activation.__name__ == "linear"
    assert [tuple(d.get_layer(n).strides) for n in layers if d.get_layer(n).kernel.shape[0] == 3] == [(2, 2)]
    kernel = np.asarray(conv.kernel, dtype=np.float64).transpose(3, 2, 0, 1)
    ref = _with_kernel(m, "c", L.tucker2_reconstruct(*L.tucker2(kernel, ranks)))
    x = np.random.default_rng(1).normal(size=(2, 9, 9, 6)).astype("float32")
    np.testing.assert_allclose(d(x), ref(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stride,padding", [(1, "same"), (2, "same"), (1, "valid"), (2, "valid")])
def test_cp_equals_the_reconstructed_kernel(keras_device, stride, padding):
    keras.utils.set_random_seed(0)
    inp = keras.Input((11, 12, 6))
    conv = keras.layers.Conv2D(16, (5, 3), strides=stride, padding=padding, activation="relu", name="c")
    m = keras.Model(inp, conv(inp))
    d = cl.decompose(m, cl.CP(rank=6))
    assert [type(l).__name__ for l in d.layers[1:]] == ["Conv2D", "DepthwiseConv2D", "DepthwiseConv2D", "Conv2D"]
    kernel = np.asarray(conv.kernel, dtype=np.float64).transpose(3, 2, 0, 1)
    ref = _with_kernel(m, "c", L.cp_reconstruct(*L.cp(kernel, 6)))
    x = np.random.default_rng(1).normal(size=(2, 11, 12, 6)).astype("float32")
    np.testing.assert_allclose(d(x), ref(x), atol=1e-4, rtol=1e-4)


def test_refused_ranks_warn_once_and_errors():
    m = build("mlp_wide")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = cl.decompose(m, cl.SVD(rank=64))
    assert len(caught) == 1 and "fc3: rank=64 exceeds the 10×1024 matrix" in str(caught[0].message)
    assert "fc3" in [l.name for l in d.layers]
    lenet = build("lenet5")
    with pytest.raises(ValueError, match="exceeds"):
        cl.decompose(lenet, cl.Tucker(ranks=(7, 8)), layers=["conv2"])
    with pytest.raises(ValueError, match="no layer named"):
        cl.decompose(lenet, cl.SVD(rank=4), layers=["nope"])
    with pytest.warns(UserWarning, match="Dense is not a Conv2D"):
        d = cl.decompose(lenet, cl.Tucker(ranks=(4, 8)), layers=["conv2", "fc1"])
    assert "fc1" in [l.name for l in d.layers] and "conv2_tucker1" in [l.name for l in d.layers]
    d = cl.decompose(lenet, cl.SVD(rank=8), layers=lambda name, layer: layer.kernel.shape[0] == 400)
    assert "fc1_svd0" in [l.name for l in d.layers] and "fc2" in [l.name for l in d.layers]
    sub = type("Sub", (keras.Model,), {"call": lambda self, x: x})()
    with pytest.raises(TypeError, match="subclassed"):
        cl.decompose(sub, cl.SVD(rank=2))


def test_save_load_exact(resnet, tmp_path):
    d = cl.decompose(resnet, cl.Tucker(energy=0.8),
                     layers=lambda n, l: tuple(l.kernel_size) == (3, 3) and l.kernel.shape[2] > 1)
    cl.save(d, tmp_path / "d.clz")
    back = cl.load(tmp_path / "d.clz")
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(back(x, training=False), d(x, training=False))


def test_finetune_recovers_accuracy(resnet):
    from compresslib.keras.train import evaluate

    test = cl.datasets.load_mnist("test", layout="keras")
    digits = (test[0][:500], test[1][:500])
    base = evaluate(resnet, digits)
    d = cl.decompose(resnet, cl.Tucker(ranks=(4, 4)), layers=["layer2_conv2", "layer3_conv2"])
    low = evaluate(d, digits)
    x, y = cl.datasets.load_mnist("train", layout="keras")
    f = kl.finetune(d, (x[:1000], y[:1000]), epochs=1, lr=1e-3)
    assert f is not d and evaluate(d, digits) == low
    assert low < 0.5 < base
    assert evaluate(f, digits) > low + 0.3


def test_sequential_model_rebuilt_as_functional():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu", name="a"),
                          keras.layers.Dense(16, name="b")])
    d = cl.decompose(m, cl.SVD(rank=4), layers=["a"])
    assert [l.name for l in d.layers][1:] == ["a_svd0", "a_svd1", "b"]
    a, b = L.svd_factors(np.asarray(m.get_layer("a").kernel, dtype=np.float64).T, 4)
    x = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    np.testing.assert_allclose(d(x), _with_kernel(m, "a", a @ b)(x), atol=1e-5, rtol=1e-5)


def test_svd_factors_dense_layers_inside_a_nested_model():
    keras.utils.set_random_seed(0)
    i = keras.Input((16,))
    inner = keras.Model(i, keras.layers.Dense(16, name="inner_fc")(i), name="inner")
    m = keras.Sequential([keras.Input((16,)), inner, keras.layers.Dense(3, name="head")])
    d = cl.decompose(m, cl.SVD(rank=4), layers=["inner_fc"])
    names = [l.name for l in d.get_layer("inner").layers]
    assert names[1:] == ["inner_fc_svd0", "inner_fc_svd1"]
    w = np.asarray(inner.get_layer("inner_fc").kernel)
    u, sv, vt = np.linalg.svd(w)
    x = np.random.default_rng(0).normal(size=(2, 16)).astype(np.float32)
    b = np.asarray(inner.get_layer("inner_fc").bias)
    expected = m.get_layer("head")(x @ ((u[:, :4] * sv[:4]) @ vt[:4]) + b)
    np.testing.assert_allclose(d(x), expected, atol=1e-4, rtol=1e-4)


def test_no_layer_to_factor_warns_that_nothing_changes():
    i = keras.Input((5,), dtype="int32")
    m = keras.Model(i, keras.layers.Dense(2)(keras.layers.Embedding(10, 3)(i)))
    with pytest.warns(UserWarning, match=r"decompose\(Tucker\): the model comes back unchanged: it factors Conv2D"):
        cl.decompose(m, cl.Tucker(energy=0.9))


def test_subclassed_model_is_refused_by_class_name(subnet):
    with pytest.raises(TypeError, match=r"decompose\(SVD\) rewires the model's layers.*SubNet is a subclassed"):
        cl.decompose(subnet, cl.SVD(rank=1))
