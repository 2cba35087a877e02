"""Reference-model weights to and from ``.npz`` (no pickle), Keras side."""
from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from compresslib.keras.models import build


def seed_everything(seed: int) -> None:
    keras.utils.set_random_seed(seed)


def to_npz(model: keras.Model, path: str | Path) -> None:
    """Write every weight (BatchNorm statistics included) as ``w000, w001, ...`` in layer order."""
    arrays = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(model.get_weights())}
    np.savez_compressed(path, **arrays)


def from_npz(name: str, path: str | Path) -> keras.Model:
    """Build reference model ``name`` and load weights from ``path`` (``allow_pickle=False``)."""
    model = build(name)
    with np.load(path, allow_pickle=False) as npz:
        weights = [npz[k] for k in sorted(npz.files)]
    model.set_weights(weights)
    return model
