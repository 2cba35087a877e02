"""Learning-rate schedule shared by both frameworks' training helpers.

Example:
    >>> [step_lr(1e-3, e, 10) for e in (0, 6, 9)]
    [0.001, 0.0003, 0.0001]
"""
from __future__ import annotations


def step_lr(base_lr: float, epoch: int, epochs: int) -> float:
    """Step decay: ``base_lr`` for the first 60 % of epochs, ×0.3 until 85 %, then ×0.1."""
    if epochs <= 0:
        raise ValueError(f"epochs must be positive, got {epochs}")
    frac = epoch / epochs
    factor = 1.0 if frac < 0.6 else 0.3 if frac < 0.85 else 0.1
    return round(base_lr * factor, 12)
