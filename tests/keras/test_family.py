"""The residual families in Keras: folding (depthwise too), structured pruning and training on every device."""
import warnings

import keras
import numpy as np
import pytest
from keras import layers

import compresslib as cl
from compresslib.keras import models as km


def _randomized(name):
    model = km.build(name)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.moving_mean.shape[0]
            rng = np.random.default_rng(len(layer.name))
            layer.moving_mean.assign(rng.uniform(-0.5, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
    return model


@pytest.mark.parametrize("name", ["resnet20_w16", "resnet20_w16_plain", "resnet11_w8_bottleneck", "invres_x0.5"])
def test_folding_family_members(name, keras_device):
    m = _randomized(name)
    before = [w.copy() for w in m.get_weights()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every BN follows a Conv2D or DepthwiseConv2D: no warning
        f = cl.fold_batchnorm(m)
    assert sum(type(l).__name__ == "BatchNormalization" for l in f.layers) == 0
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    ref, out = np.asarray(m(x, training=False)), np.asarray(f(x))
    assert np.abs(out - ref).max() <= 1e-5 * max(1.0, np.abs(ref).max())
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))


def test_bn_after_add_stays_with_one_warning_naming_it(keras_device):
    i = keras.Input((6, 6, 4))
    h = layers.Add(name="add")([layers.Conv2D(4, 3, padding="same", name="conv")(i), i])
    h = layers.BatchNormalization(name="bn")(h)
    o = layers.BatchNormalization(name="bn2")(layers.Conv2D(4, 1, name="conv2")(h))
    m = keras.Model(i, o)
    m.get_layer("bn").moving_mean.assign(np.linspace(-1, 1, 4).astype("float32"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = cl.fold_batchnorm(m)
    messages = [str(w.message) for w in caught if "fold_batchnorm" in str(w.message)]
    assert len(messages) == 1 and "bn: its input is not a Conv2D/DepthwiseConv2D/Dense output" in messages[0]
    assert [l.name for l in f.layers if type(l).__name__ == "BatchNormalization"] == ["bn"]
    x = np.random.default_rng(1).random((2, 6, 6, 4), dtype=np.float32)
    np.testing.assert_allclose(np.asarray(f(x)), np.asarray(m(x, training=False)), atol=1e-5, rtol=1e-5)


def test_no_batchnorm_gives_an_equal_copy(keras_device):
    m = km.build("lenet5")
    with pytest.warns(UserWarning, match="comes back unchanged: it has no BatchNorm"):
        f = cl.fold_batchnorm(m)
    assert f is not m
    assert all(np.array_equal(a, b) for a, b in zip(m.get_weights(), f.get_weights()))
    assert not any(a is b for a, b in zip(m.weights, f.weights))
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    assert np.array_equal(np.asarray(f(x)), np.asarray(m(x)))


def test_structured_pruning_keeps_shortcut_channels_coupled():
    m = _randomized("resnet20_w16")
    p = cl.prune(m, cl.Structured(0.5))
    for stage in ("layer1", "layer2", "layer3"):
        counts = {p.get_layer(f"{stage}.{i}.conv2").filters for i in range(3)}
        assert len(counts) == 1
    assert p.get_layer("layer1.0.conv2").filters == p.get_layer("stem.conv").filters == 8
    assert p.get_layer("layer3.0.conv1").filters == 32
    assert p(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 10)
    assert p.count_params() < 0.3 * m.count_params()


def test_family_member_trains(keras_device):
    from compresslib.keras.train import fit

    x, y = cl.datasets.load_mnist("train", layout="keras")
    m = km.build("resnet8_w8")
    losses = fit(m, (x[:1024], y[:1024]), epochs=3, batch_size=64, lr=2e-3)
    # from ~2.3 (chance); eval-mode accuracy is not asserted: after 48 steps the BN running
    # averages still lag behind the weights
    assert losses[2] < losses[1] < losses[0] < 2.4 and losses[2] < 1.6
