"""The same float weights give the same integers and scales through torch and Keras."""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np
import pytest
import torch
from torch import nn
import keras

import compresslib as cl
from compresslib.core import quant as cq
from compresslib.keras import quantization as kq
from compresslib.torch import quantization as tq


@pytest.fixture(scope="module")
def conv_weights():
    rng = np.random.default_rng(0)
    w = rng.normal(scale=0.2, size=(8, 3, 3, 3)).astype(np.float32)  # torch (out, in, kh, kw)
    return w, rng.normal(size=8).astype(np.float32)


def test_torch_static_ints_equal_core_on_keras_kernel(conv_weights):
    w, b = conv_weights
    m = nn.Sequential(nn.Conv2d(3, 8, 3), nn.Flatten(), nn.Linear(8 * 4 * 4, 4))
    with torch.no_grad():
        m[0].weight.copy_(torch.from_numpy(w)); m[0].bias.copy_(torch.from_numpy(b))
    x = np.random.default_rng(1).normal(size=(16, 3, 6, 6)).astype(np.float32)
    q = cl.quantize(m, cl.Int8Static(per_channel=True), calibration_data=x)
    tw = q.get_submodule("0").weight()
    keras_kernel = np.transpose(w, (2, 3, 1, 0))  # (kh, kw, in, out)
    qt = cq.quantize_tensor(keras_kernel, 8, symmetric=True, axis=-1)
    np.testing.assert_array_equal(np.transpose(qt.q, (3, 2, 0, 1)), tw.int_repr().numpy())
    np.testing.assert_allclose(qt.scale, tw.q_per_channel_scales().numpy(), rtol=1e-6)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_keras_fake_quant_layers_equal_torch_weights(conv_weights, bits):
    w, b = conv_weights
    tm = nn.Sequential(nn.Conv2d(3, 8, 3))
    with torch.no_grad():
        tm[0].weight.copy_(torch.from_numpy(w)); tm[0].bias.copy_(torch.from_numpy(b))
    km = keras.Sequential([keras.Input((6, 6, 3)), keras.layers.Conv2D(8, 3)])
    km.set_weights([np.transpose(w, (2, 3, 1, 0)), b])
    t = tq.fake_quantize_weights(tm, bits)[0].weight.detach().numpy()
    k = kq.fake_quantize_weights(km, bits).layers[0].get_weights()[0]
    np.testing.assert_array_equal(np.transpose(k, (3, 2, 0, 1)), t)
    # Keras QAT layers (keras.ops) round exactly like the core
    qat = kq.prepare_qat(km, cl.QAT(weight_bits=bits, activation_bits=None))
    np.testing.assert_allclose(np.asarray(qat.layers[-1]._fq_kernel()), k, atol=1e-7)
    x = np.random.default_rng(2).normal(size=(2, 3, 6, 6)).astype(np.float32)
    with torch.no_grad():
        ref = tq.fake_quantize_weights(tm, bits)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(np.asarray(qat(np.transpose(x, (0, 2, 3, 1)))), np.transpose(ref, (0, 2, 3, 1)),
                               atol=1e-5)
