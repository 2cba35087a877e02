"""Learning-rate schedule shared by both frameworks' training helpers.

Example:
    >>> [step_lr(1e-3, e, 10) for e in (0, 6, 9)]
    [0.001, 0.0003, 0.0001]
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def step_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Step decay: ``base_lr`` for the first 60 % of epochs, ×0.3 until 85 %, then ×0.1."""
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    frac = epoch / epochs
    factor = 1.0 if frac < 0.6 else 0.3 if frac < 0.85 else 0.1
    return round(base_lr * factor, 12)


def check_data(data: Any, argument: str = "data",
               to_numpy: Callable[[Any], np.ndarray] = np.asarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``data = (x, y)``: a pair of non-empty arrays of equal length; return them as NumPy.

    Example:
        >>> x, y = check_data((np.zeros((3, 2)), [0, 1, 1]))
        >>> x.shape, y.shape
        ((3, 2), (3,))
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise ValueError(f"{argument} must be a pair (x, y) of arrays, got {type(data).__name__}")
    x, y = (to_numpy(a) for a in data)
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"{argument}: x and y must be non-empty and of equal length, got {len(x)} and {len(y)}")
    return x, y
