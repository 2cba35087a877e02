"""Float16/BFloat16 copies: layers lacking the dtype stay float32 with one warning; nested and subclassed models."""
import warnings

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl


def _recurrent():
    keras.utils.set_random_seed(0)
    i = keras.Input((5,), dtype="int32")
    h = keras.layers.Embedding(20, 6, name="emb")(i)
    h = keras.layers.GRU(6, name="gru")(h)
    return keras.Model(i, keras.layers.Dense(3, name="out")(h))


def test_bfloat16_keeps_recurrent_layers_float32_and_names_them():
    m = _recurrent()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = cl.quantize(m, cl.BFloat16())
    ours = [str(w.message) for w in caught if "bfloat16" in str(w.message) and "float32" in str(w.message)]
    assert len(ours) == 1 and "gru (GRU: TensorFlow op Qr has no kernel for this dtype)" in ours[0]
    dtypes = {l.name: l.dtype_policy.name for l in h.layers}
    assert dtypes["gru"] == "float32" and dtypes["emb"] == dtypes["out"] == "bfloat16"
    x = np.arange(10, dtype=np.int32).reshape(2, 5)
    got, ref = np.asarray(h(x), np.float32), np.asarray(m(x))
    assert np.abs(got - ref).max() < 0.02 * np.abs(ref).max() + 1e-3
    assert all(l.dtype_policy.name == "float32" for l in m.layers)  # the input is untouched


def test_float16_converts_inside_nested_models_and_bare_ops():
    inner_in = keras.Input((4,))
    inner = keras.Model(inner_in, keras.layers.Dense(4, name="inner_dense")(inner_in) + 3.0, name="inner")
    m = keras.Sequential([keras.Input((4,)), inner, keras.layers.Dense(2, name="head")])
    h = cl.quantize(m, cl.Float16())
    assert h.get_layer("inner").get_layer("inner_dense").kernel.dtype == "float16"
    assert h.get_layer("head").kernel.dtype == "float16"
    x = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(h(x), np.float32), m(x), atol=2e-2, rtol=1e-2)


@keras.saving.register_keras_serializable(package="compresslib_tests")
class _Net(keras.Model):
    def __init__(self, width=4, **kwargs):
        super().__init__(**kwargs)
        self.width = width
        self.conv = keras.layers.Conv2D(width, 3)
        self.head = keras.layers.Dense(2)

    def call(self, x):
        return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    def get_config(self):
        return {**super().get_config(), "width": self.width}


def test_subclassed_model_with_get_config_is_recreated_in_float16(tmp_path):
    m = _Net()
    x = np.random.default_rng(1).normal(size=(2, 6, 6, 3)).astype(np.float32)
    m(x)
    h = cl.quantize(m, cl.Float16())
    assert type(h) is _Net and h.conv.kernel.dtype == "float16" and m.conv.kernel.dtype == "float32"
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    cl.save(h, tmp_path / "h.clz")
    with pytest.raises(ValueError, match="compresslib_tests>_Net"):  # registered with Keras only: not trusted
        cl.load(tmp_path / "h.clz")
    back = cl.load(tmp_path / "h.clz", custom_objects={"compresslib_tests>_Net": _Net})
    assert back.conv.kernel.dtype == "float16"
    np.testing.assert_array_equal(np.asarray(back(x)), np.asarray(h(x)))


def test_subclassed_model_without_get_config_is_refused_by_class_name(opaque):
    with pytest.raises(TypeError, match="Opaque has no get_config"):
        cl.quantize(opaque, cl.BFloat16())
