import os

import keras
import numpy as np
import pytest

import compresslib as cl
from compresslib.keras.measure import native_file_bytes


def test_nonzero_count_of_hand_built_sparse_model():
    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4, name="a"), keras.layers.Dense(2, name="b")])
    w = np.zeros((10, 4), np.float32)
    w[:3, 0] = 1.0
    model.get_layer("a").set_weights([w, np.array([0, 1, 0, 2], np.float32)])
    model.get_layer("b").set_weights([np.full((4, 2), 0.5, np.float32), np.zeros(2, np.float32)])
    r = cl.measure(model, latency=False)
    assert r.params == 54 and r.nonzero_params == 13
    assert [(l.name, l.params, l.nonzero_params) for l in r.layers] == [("a", 44, 5), ("b", 10, 8)]


def test_macs_of_known_layers():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", name="c1")(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, groups=2, name="c2")(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", name="dw")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, name="d")(x)
    r = cl.measure(keras.Model(inputs, outputs), latency=False)
    expected = {"c1": 28 * 28 * 4 * 9, "c2": 13 * 13 * 8 * 2 * 9, "dw": 13 * 13 * 8 * 9, "d": 8 * 13 * 13 * 10}
    assert {l.name: l.macs for l in r.layers if l.macs} == expected


def test_batchnorm_statistics_are_not_parameters():
    m = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.BatchNormalization()])
    assert cl.measure(m, latency=False).params == 6  # gamma and beta; not moving mean/variance


def test_file_bytes_equal_the_written_file(tmp_path):
    model = cl.zoo.pretrained("lenet300_100", "keras")
    size, gz, fmt = native_file_bytes(model)
    path = tmp_path / "model.keras"
    model.save(path)
    # a .keras file is a zip with a timestamp inside: sizes agree to the byte
    assert size == os.path.getsize(path) and fmt == ".keras"
    assert 0 < gz < size


def test_latency_and_accuracy(keras_device):
    model = cl.zoo.pretrained("lenet5", "keras")
    data = cl.datasets.load_mnist("test", layout="keras")
    r = cl.measure(model, data=data, batch_size=16, runs=20, warmup=3)
    assert r.latency_ms > 0 and r.latency_runs == 20 and r.batch_size == 16
    assert r.accuracy >= 0.97 and r.framework == "keras"


def test_bad_input_names_the_argument():
    model = cl.zoo.pretrained("lenet5", "keras")
    with pytest.raises(ValueError, match="data"):
        cl.measure(model, data=cl.datasets.load_mnist("test", layout="torch"))
    with pytest.raises(ValueError, match="example_input"):
        cl.measure(model, example_input=np.zeros((1, 5, 5, 3), np.float32))
    with pytest.raises(ValueError, match="data"):
        cl.measure(model, data=[np.zeros((2, 28, 28, 1))])
