"""A Keras model compiled with a local-function loss (as compresslib's distillation ``fit`` leaves it) saves
without that compile state and loads with identical outputs; a file written with it loads uncompiled, with a
warning, instead of failing (chapter 9's cached branches were such files)."""
import json
import warnings

import numpy as np
import pytest
import torch  # noqa: F401  (before tensorflow)
import keras

import compresslib as cl


def _model():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(3)])

    def loss(y_true, y_pred):  # a closure-like local function: not restorable from a file
        return keras.ops.mean(keras.ops.square(y_pred))

    m.compile(optimizer="adam", loss=loss)
    return m


def test_local_loss_is_dropped_at_save(tmp_path):
    m = _model()
    x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
    path = tmp_path / "m.clz"
    cl.save(m, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning: nothing to drop at load
        back = cl.load(path)
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
    assert not back.compiled


def test_builtin_compile_state_is_kept(tmp_path):
    m = _model()
    m.compile(optimizer="adam", loss="mse")
    cl.save(m, tmp_path / "m.clz")
    assert cl.load(tmp_path / "m.clz").compiled


def test_a_file_with_a_local_loss_loads_uncompiled_with_a_warning(tmp_path):
    from compresslib.keras import io as kio

    m = _model()
    spec, tensors = kio.to_spec(m)
    spec["config"]["compile_config"] = json.loads(m.to_json())["compile_config"]  # as older files hold it
    assert spec["config"]["compile_config"]["loss"]["class_name"] == "function"
    with pytest.warns(UserWarning, match="compile state is not restored"):
        back = kio.from_spec(spec, tensors)
    x = np.ones((2, 6), "float32")
    np.testing.assert_array_equal(back.predict(x, verbose=0), m.predict(x, verbose=0))
