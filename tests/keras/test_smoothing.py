"""SmoothQuant on Keras models: LayerNormalization -> Dense / EinsumDense / MultiHeadAttention pairs found in the
graph, the function kept, models without a pair refused naming the LayerNorms."""

import numpy as np
import pytest
import torch  # noqa: F401  (torch before tensorflow)
import keras

import compresslib as cl
from compresslib.core.smoothing import smoothing_scales
from compresslib.keras.smoothing import layernorm_pairs


def _pre_norm(d: int = 8) -> keras.Model:
    i = keras.Input((5, d))
    h = keras.layers.LayerNormalization(name="norm1")(i)
    x = keras.layers.Add()([i, keras.layers.Multiply()([keras.layers.Dense(d, name="q")(h),
                                                         keras.layers.Dense(d, activation="sigmoid", name="v")(h)])])
    out = keras.layers.Dense(3, name="fc")(keras.layers.LayerNormalization(name="norm2")(x))
    return keras.Model(i, out, name="pre_norm")


def _post_norm(d: int = 8) -> keras.Model:
    i = keras.Input((d,))
    h = keras.layers.LayerNormalization(name="norm")(i)
    return keras.Model(i, keras.layers.Dense(3)(keras.layers.Add()([h, keras.layers.Dense(d)(h)])), name="post_norm")


def _data(n: int = 32, d: int = 8) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.normal(size=(n, 5, d)) * np.float32([30] + [1] * (d - 1)) + 2).astype(np.float32)


def test_pairs_come_from_the_graph():
    keras.utils.set_random_seed(0)
    assert layernorm_pairs(_pre_norm()) == {"norm1": ["q", "v"], "norm2": ["fc"]}
    assert layernorm_pairs(_post_norm()) == {}


def test_smoothing_keeps_the_function_and_scales_the_columns():
    keras.utils.set_random_seed(0)
    m, x = _pre_norm(), _data()
    m.get_layer("norm1").gamma.assign(np.linspace(0.5, 1.5, 8).astype(np.float32))
    ref = np.asarray(m(x))
    before = [w.copy() for w in m.get_weights()]
    s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x)
    assert all(np.array_equal(a, b) for a, b in zip(before, m.get_weights()))  # the input model is not changed
    np.testing.assert_allclose(np.asarray(s(x)), ref, atol=1e-4)
    h = np.asarray(keras.Model(m.inputs, m.get_layer("norm1").output)(x))
    amax = np.abs(h).reshape(-1, 8).max(0)
    wmax = np.maximum(np.abs(m.get_layer("q").kernel.numpy()).max(1), np.abs(m.get_layer("v").kernel.numpy()).max(1))
    scale = smoothing_scales(amax, wmax, 0.5)
    np.testing.assert_allclose(s.get_layer("q").kernel.numpy(), m.get_layer("q").kernel.numpy() * scale[:, None],
                               rtol=1e-5)
    np.testing.assert_allclose(s.get_layer("norm1").gamma.numpy(), m.get_layer("norm1").gamma.numpy() / scale,
                               rtol=1e-5)


def test_a_model_without_pairs_is_refused_naming_the_layer():
    m = _post_norm()
    with pytest.raises(ValueError, match=r"model: SmoothQuant found no LayerNormalization of post_norm read only by "
                                         r".*'norm' \(also read by add"):
        cl.transform(m, cl.SmoothQuant(), calibration_data=np.ones((4, 8), np.float32))


def test_attention_and_einsum_readers():
    """A pre-LN transformer block: the first norm feeds MultiHeadAttention (query = key = value), the second an
    EinsumDense; both take the scales, the function is kept and the outlier channel's range shrinks."""
    keras.utils.set_random_seed(0)
    i = keras.Input((5, 8))
    h = keras.layers.LayerNormalization(name="norm1")(i)
    x = keras.layers.Add()([i, keras.layers.MultiHeadAttention(2, 4, name="mha")(h, h, use_causal_mask=True)])
    h = keras.layers.LayerNormalization(name="norm2")(x)
    f = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 16), name="up")(h)
    m = keras.Model(i, keras.layers.Add()([x, keras.layers.Dense(8)(f)]))
    assert layernorm_pairs(m) == {"norm1": ["mha"], "norm2": ["up"]}
    x = _data()
    s = cl.transform(m, cl.SmoothQuant(alpha=0.5), calibration_data=x)
    np.testing.assert_allclose(np.asarray(s(x)), np.asarray(m(x)), rtol=1e-4, atol=1e-4)
    before = np.abs(np.asarray(keras.Model(m.inputs, m.get_layer("norm1").output)(x))).reshape(-1, 8).max(0)
    after = np.abs(np.asarray(keras.Model(s.inputs, s.get_layer("norm1").output)(x))).reshape(-1, 8).max(0)
    assert after.max() / after.min() < before.max() / before.min()
    q = s.get_layer("mha")._query_dense.kernel.numpy()
    assert not np.array_equal(q, m.get_layer("mha")._query_dense.kernel.numpy())


def test_refusals_name_the_argument():
    with pytest.raises(ValueError, match="calibration_data: SmoothQuant needs example inputs"):
        cl.transform(_pre_norm(), cl.SmoothQuant())

    class Sub(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(TypeError, match="model: SmoothQuant rewires .* Sub is a subclassed keras.Model"):
        cl.transform(Sub(), cl.SmoothQuant(), calibration_data=np.ones((2, 4), np.float32))
