import hashlib

import numpy as np
import pytest

import compresslib as cl
from compresslib import datasets

# sha256 over (name, bytes) of every array in compresslib/data/mnist.npz, names sorted.
MNIST_SHA256 = "e3e259e5a6e31c1f7d8c1550f9e75757dc070a6222f48ba9df2e984f4b8594a8"


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
