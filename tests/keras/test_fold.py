"""Keras BatchNorm folding: graph rebuilt without BN, same outputs in inference, residual model, warnings."""
import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl
from compresslib.keras.fold import batchnorm_pairs


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="keras")


def test_resnet_folded_equals_original(resnet, keras_device):
    before = [np.array(w) for w in resnet.get_weights()]
    f = cl.fold_batchnorm(resnet)
    kinds = [type(l).__name__ for l in f.layers]
    assert "BatchNormalization" not in kinds and kinds.count("Add") == 3
    pairs, skipped = batchnorm_pairs(resnet)
    assert len(pairs) == 9 and not skipped and ("layer2_sc_conv", "layer2_sc_bn") in pairs
    x = np.random.default_rng(0).random((16, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(f(x), resnet(x, training=False), atol=1e-4, rtol=1e-4)
    for a, b in zip(resnet.get_weights(), before):
        np.testing.assert_array_equal(a, b)
    bn_params = sum(l.count_params() for l in resnet.layers if type(l).__name__ == "BatchNormalization")
    conv_bias = sum(l.filters for l in f.layers if type(l).__name__ == "Conv2D")
    assert resnet.count_params() - f.count_params() == bn_params - conv_bias


def test_dense_and_activation_rules():
    keras.utils.set_random_seed(0)
    inp = keras.Input((6,))
    h = keras.layers.Dense(5, name="d1")(inp)
    h = keras.layers.BatchNormalization(name="bn1", center=False)(h)
    h = keras.layers.Dense(4, activation="relu", name="d2")(h)
    out = keras.layers.BatchNormalization(name="bn2")(h)
    m = keras.Model(inp, out)
    for bn in ("bn1", "bn2"):
        layer = m.get_layer(bn)
        n = layer.moving_mean.shape[0]
        rng = np.random.default_rng(1)
        layer.moving_mean.assign(rng.normal(size=n).astype("float32"))
        layer.moving_variance.assign(rng.random(n).astype("float32") + 0.5)
        layer.gamma.assign(rng.normal(size=n).astype("float32"))
    with pytest.warns(UserWarning, match="bn2: d2 has a built-in activation"):
        f = cl.fold_batchnorm(m)
    assert [l.name for l in f.layers][1:] == ["d1", "d2", "bn2"]
    assert f.get_layer("d1").use_bias is True
    x = np.random.default_rng(2).normal(size=(7, 6)).astype("float32")
    np.testing.assert_allclose(f(x), m(x, training=False), atol=1e-5, rtol=1e-5)


def test_shared_output_is_not_folded():
    inp = keras.Input((8, 8, 2))
    c = keras.layers.Conv2D(3, 3, padding="same", name="c")(inp)
    b = keras.layers.BatchNormalization(name="bn")(c)
    m = keras.Model(inp, keras.layers.Add(name="add")([b, c]))
    with pytest.warns(UserWarning, match="c's output is also used elsewhere"):
        f = cl.fold_batchnorm(m)
    assert "bn" in [l.name for l in f.layers]


def test_no_bn_no_change_and_says_so():
    m = cl.zoo.pretrained("lenet5", framework="keras")
    with pytest.warns(UserWarning, match="fold_batchnorm: the model comes back unchanged: it has no BatchNormalization"):
        f = cl.fold_batchnorm(m)
    assert f is not m
    for a, b in zip(m.get_weights(), f.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_save_load(resnet, tmp_path):
    f = cl.fold_batchnorm(resnet)
    cl.save(f, tmp_path / "f.clz")
    back = cl.load(tmp_path / "f.clz")
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(back(x), f(x))


def test_nested_backbone_is_folded_and_example_input_is_accepted():
    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 2))
    h = keras.layers.BatchNormalization(name="inner_bn")(keras.layers.Conv2D(3, 3, name="inner_conv")(i))
    backbone = keras.Model(i, keras.layers.GlobalAveragePooling2D()(h), name="backbone")
    m = keras.Sequential([keras.Input((6, 6, 2)), backbone, keras.layers.Dense(2, name="head")])
    bn = backbone.get_layer("inner_bn")
    bn.moving_mean.assign(np.array([0.5, -1.0, 2.0], np.float32))
    bn.moving_variance.assign(np.array([0.25, 4.0, 1.5], np.float32))
    x = np.random.default_rng(0).normal(size=(4, 6, 6, 2)).astype(np.float32)
    f = cl.fold_batchnorm(m, example_input=x)
    kinds = [type(l).__name__ for l in f.get_layer("backbone").layers]
    assert "BatchNormalization" not in kinds and "BatchNormalization" in [type(l).__name__ for l in backbone.layers]
    np.testing.assert_allclose(f(x), m(x, training=False), atol=1e-5, rtol=1e-5)


def test_subclassed_model_is_refused_by_class_name():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.c, self.bn = keras.layers.Conv2D(2, 3), keras.layers.BatchNormalization()

        def call(self, x):
            return self.bn(self.c(x))

    m = Net()
    m(np.zeros((1, 5, 5, 1), np.float32))
    with pytest.raises(TypeError, match="fold_batchnorm rewires the model's layers.*Net is a subclassed"):
        cl.fold_batchnorm(m)


def test_depthwise_conv_is_folded():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.DepthwiseConv2D(3, use_bias=False, name="dw"),
                          keras.layers.BatchNormalization(name="bn")])
    bn = m.get_layer("bn")
    bn.moving_mean.assign(np.array([0.1, -0.2, 0.3], np.float32))
    bn.moving_variance.assign(np.array([2.0, 0.5, 1.0], np.float32))
    bn.gamma.assign(np.array([1.5, -1.0, 0.5], np.float32))
    f = cl.fold_batchnorm(m)
    assert [type(l).__name__ for l in f.layers][1:] == ["DepthwiseConv2D"] and f.get_layer("dw").use_bias
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 3)).astype(np.float32)
    np.testing.assert_allclose(f(x), m(x, training=False), atol=1e-5, rtol=1e-5)
