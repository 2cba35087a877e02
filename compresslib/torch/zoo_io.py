"""Reference-model weights to and from ``.npz`` (no pickle), PyTorch side."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compresslib.torch.models import build


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def to_npz(model: torch.nn.Module, path: str | Path) -> None:
    """Write the state_dict as named arrays."""
    arrays = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    np.savez_compressed(path, **arrays)


def from_npz(name: str, path: str | Path) -> torch.nn.Module:
    """Build reference model ``name`` and load weights from ``path`` (``allow_pickle=False``)."""
    model = build(name)
    with np.load(path, allow_pickle=False) as npz:
        state = {k: torch.from_numpy(npz[k].copy()) for k in npz.files}
    model.load_state_dict(state, strict=True)
    return model.eval()
