"""Keras Int8Static's bias correction (``compresslib.keras.bias_correction``) and its float_output refusal."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl
from compresslib.core.selection import row_cosines as cosine  # row-wise cosine
from compresslib.keras import bias_correction as kb


@pytest.fixture(scope="module")
def mnist():
    train = cl.datasets.load_mnist("train", layout="keras")
    test = cl.datasets.load_mnist("test", layout="keras")
    return train[0][:256], test[0][:500]


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="keras")


def _cos(a, b):
    return float(cosine(np.asarray(a, np.float64), np.asarray(b, np.float64)).mean())


def test_int8_kernel_is_litert_rounding():
    w = np.random.default_rng(0).normal(size=(3, 3, 4, 8)).astype(np.float32)
    q = kb.int8_kernel(w)
    scale = np.abs(w).max(axis=(0, 1, 2)) / 127
    levels = q / scale
    assert np.allclose(levels, np.round(levels), atol=1e-3) and np.abs(levels).max() <= 127 + 1e-3
    assert np.abs(q - w).max() <= scale.max() / 2 + 1e-7
    dw = np.random.default_rng(1).normal(size=(3, 3, 4, 2)).astype(np.float32)  # depthwise: 8 output channels
    qd = kb.int8_kernel(dw, depthwise=True)
    per_out = np.abs(dw.reshape(3, 3, 8)).max(axis=(0, 1)) / 127
    assert np.allclose(qd.reshape(3, 3, 8) / per_out, np.round(qd.reshape(3, 3, 8) / per_out), atol=1e-3)


def test_correction_removes_the_weight_rounding_mean_error(resnet, mnist):
    cal, _ = mnist
    before = [w.copy() for w in resnet.get_weights()]
    fixed, note = kb.corrected_copy(resnet, cal)
    assert all(np.array_equal(a, b) for a, b in zip(before, resnet.get_weights()))  # caller's model untouched
    assert note["layers"] == 10 and 0 < note["max_shift"] < 0.1
    assert not any(type(l).__name__ == "BatchNormalization" for l in fixed.layers)  # folded first
    # with the kernels rounded as LiteRT rounds them (activations float), the mean error per class shrinks
    from compresslib.keras.fold import fold_batchnorm

    def rounded(model):
        for layer in model.layers:
            if type(layer).__name__ in ("Conv2D", "Dense"):
                layer.kernel.assign(kb.int8_kernel(np.asarray(layer.kernel)))
        return model

    ref = resnet.predict(cal, verbose=0)
    mean_error = lambda m: float(np.abs((m.predict(cal, verbose=0) - ref).mean(0)).mean())  # noqa: E731
    plain = rounded(fold_batchnorm(resnet))
    assert mean_error(rounded(fixed)) < 0.8 * mean_error(plain)  # measured: 0.032 vs 0.045


def test_bias_correction_raises_litert_cosine(resnet, mnist):
    cal, x = mnist
    ref = resnet.predict(x, verbose=0)
    plain = cl.quantize(resnet, cl.Int8Static(bias_correction=False), calibration_data=cal)
    fixed = cl.quantize(resnet, cl.Int8Static(), calibration_data=cal)
    assert plain.bias_correction is None and fixed.bias_correction["layers"] == 10
    # measured on 1,000 digits: 0.99937 -> 0.99960 (1 - cosine 1.5x smaller)
    assert (1 - _cos(plain.predict(x), ref)) > 1.2 * (1 - _cos(fixed.predict(x), ref))


def test_float_output_is_refused_before_any_work(resnet):
    with pytest.raises(ValueError, match=r"config: Int8Static\(float_output=True\) is PyTorch-only"):
        cl.quantize(resnet, cl.Int8Static(float_output=True), calibration_data=None)


def test_a_subclassed_model_is_converted_uncorrected_with_the_reason():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.a, self.b = keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)

        def call(self, x):
            return self.b(self.a(x))

    net = Net()
    x = np.random.default_rng(0).random((32, 5), dtype=np.float32)
    net(x)
    q = cl.quantize(net, cl.Int8Static(), calibration_data=x)
    assert q.bias_correction["layers"] == 0 and "subclassed" in q.bias_correction["skipped"]
    assert q.predict(x).shape == (32, 3)
