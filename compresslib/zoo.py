"""Reference models, trained once, deterministically, and cached.

``pretrained(name, framework)`` looks for weights in this order:

1. weights shipped in the package (``compresslib/data/weights``, made by
   ``scripts/train_zoo.py``): the reference, so an old cache never shadows them;
2. the cache folder (``$COMPRESSLIB_CACHE``, default ``~/.cache/compresslib``);
3. otherwise it trains the model (seeded, a minute or so on 2 CPU cores) and
   writes the weights to the cache.

Weights are stored as ``.npz`` with ``allow_pickle=False``: loading never
unpickles anything. Each call returns a fresh model; changing it changes
neither the cache nor the next call's model.

Example:
    >>> from compresslib import zoo
    >>> zoo.RECIPES["lenet5"].epochs
    15
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from compresslib._dispatch import backend, check_framework
from compresslib.datasets import load_mnist


@dataclass(frozen=True)
class Recipe:
    """How a reference model is trained (identical in both frameworks)."""

    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    lr_schedule: str = "step"
    dataset: str = "mnist"
    arch: str | None = None  # the architecture ``models.build`` takes, when it differs from the zoo name

    def as_dict(self) -> dict:
        """The recipe as plain values (the manifest's ``recipe``)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def architecture(self, name: str) -> str:
        return self.arch or name


RECIPES = {
    "lenet300_100": Recipe(epochs=15),
    "lenet5": Recipe(epochs=15),
    "resnet8": Recipe(epochs=10, batch_size=128, lr=2e-3),
    "mlp_wide": Recipe(epochs=8),
    "lenet5_caffe": Recipe(epochs=10),  # Han et al.'s LeNet-5 (431 k parameters)
    # chapter 5: the teacher of the small members (scripts/residual_experiments.py, bench/residual.py), and a
    # member wide enough that convolutions dominate its time (bench/residual.py)
    "resnet20_w16": Recipe(epochs=8, batch_size=128, lr=2e-3),
    "resnet8_w64": Recipe(epochs=4, batch_size=128, lr=2e-3),
    # Fashion-MNIST (60,000 / 10,000): trained by scripts/train_fashion_zoo.py (SGD, cosine, shifts and flips)
    # and shipped; He et al.'s ResNet-20, the same twice as wide, and He et al.'s plain-20 (no shortcuts)
    "fashion_resnet20": Recipe(epochs=15, batch_size=128, lr=0.1, lr_schedule="cosine",
                               dataset="fashion_mnist", arch="resnet20_w16"),
    "fashion_resnet20_wide": Recipe(epochs=12, batch_size=128, lr=0.1, lr_schedule="cosine",
                                    dataset="fashion_mnist", arch="resnet20_w32"),
    "fashion_plain20": Recipe(epochs=15, batch_size=128, lr=0.1, lr_schedule="cosine",
                              dataset="fashion_mnist", arch="resnet20_w16_plain"),
    # chapter 8: a character-level GPT (compresslib.core.gpt) trained by scripts/train_lm.py on the shipped
    # Shakespeare corpus (AdamW, 900 steps of 32 windows; "epochs" is unused) and shipped
    "char_gpt": Recipe(epochs=1, batch_size=32, lr=3e-3, lr_schedule="cosine", dataset="shakespeare"),
}
LANGUAGE_MODELS = tuple(n for n, r in RECIPES.items() if r.dataset == "shakespeare")
MODEL_NAMES = tuple(n for n in RECIPES if n not in LANGUAGE_MODELS)  # the image classifiers
FASHION = tuple(n for n, r in RECIPES.items() if r.dataset == "fashion_mnist")
SHIPPED = ("lenet300_100", "lenet5", "resnet8", "lenet5_caffe")  # by scripts/train_zoo.py  # small enough to ship (lenet5_caffe: 1.7 MB); mlp_wide (7 MB) trains on first use


def cache_dir() -> Path:
    """Where trained weights are cached: ``$COMPRESSLIB_CACHE`` or ``~/.cache/compresslib``."""
    return Path(os.environ.get("COMPRESSLIB_CACHE", Path.home() / ".cache" / "compresslib"))


def _filename(name: str, framework: str) -> str:
    return f"{framework}_{name}.npz"


def _check(name: str, framework: str) -> None:
    check_framework(framework)
    if name not in RECIPES:
        raise ValueError(f"name must be one of {MODEL_NAMES + LANGUAGE_MODELS}, got {name!r}")


def _shipped_path(name: str, framework: str):
    ref = resources.files("compresslib.data").joinpath("weights", _filename(name, framework))
    return ref if ref.is_file() else None


def pretrained(name: str, framework: str = "torch", *, train_if_missing: bool = True) -> Any:
    """A trained reference model ``name`` for ``framework`` ("torch" or "keras"), fresh each call.

    ``"char_gpt"`` is the chapter-8 language model: token ids (batch, T ≤ 128) in, logits
    (batch, T, 80) out (``compresslib.core.gpt``), trained on the shipped Shakespeare.

    Example:
        >>> m = pretrained("lenet5", framework="keras")   # doctest: +SKIP
        >>> lm = pretrained("char_gpt", framework="torch")   # doctest: +SKIP
    """
    _check(name, framework)
    io = backend(framework, "zoo_io")
    shipped = _shipped_path(name, framework)
    if shipped is not None:
        with resources.as_file(shipped) as path:
            return io.from_npz(RECIPES[name].architecture(name), path)
    cached = cache_dir() / _filename(name, framework)
    if cached.is_file():
        return io.from_npz(RECIPES[name].architecture(name), cached)
    if not train_if_missing:
        raise FileNotFoundError(f"no trained weights for {name!r} ({framework}) in {cache_dir()} or the package")
    model, _ = train(name, framework)
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_name(f"{cached.stem}.{os.getpid()}.tmp.npz")
    io.to_npz(model, tmp)
    os.replace(tmp, cached)  # atomic: a parallel reader never sees half a file
    return io.from_npz(name, cached)


def train(name: str, framework: str, recipe: Recipe | None = None) -> tuple[Any, dict]:
    """Train reference model ``name`` from scratch with its recipe; return it and a record
    (seconds, test accuracy, the recipe)."""
    _check(name, framework)
    recipe = recipe or RECIPES[name]
    if recipe.dataset == "shakespeare":
        raise ValueError(f"{name!r} is trained by scripts/train_lm.py (tens of minutes on one core) and ships "
                         "with the package; it is not trained on first use")
    if recipe.dataset != "mnist":
        raise ValueError(f"{name!r} is trained by scripts/train_fashion_zoo.py (SGD with augmentation, "
                         "tens of minutes on 2 cores) and ships with the package; it is not trained on first use")
    models = backend(framework, "models")
    trainer = backend(framework, "train")
    layout = framework
    data = load_mnist("train", layout=layout)
    test = load_mnist("test", layout=layout)
    backend(framework, "zoo_io").seed_everything(recipe.seed)
    model = models.build(name)
    t0 = time.perf_counter()
    trainer.fit(model, data, epochs=recipe.epochs, batch_size=recipe.batch_size, lr=recipe.lr,
                seed=recipe.seed, lr_schedule=recipe.lr_schedule)
    seconds = time.perf_counter() - t0
    record = {"name": name, "framework": framework, "train_seconds": round(seconds, 1),
              "test_accuracy": trainer.evaluate(model, test), "recipe": asdict(recipe)}
    return model, record


def manifest() -> dict:
    """Training records of the shipped weights (written by ``scripts/train_zoo.py``)."""
    ref = resources.files("compresslib.data").joinpath("weights", "manifest.json")
    return json.loads(ref.read_text()) if ref.is_file() else {}
