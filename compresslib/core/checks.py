"""Argument checks shared by the configs and the core functions: one rule, one message, everywhere.

Each raises ``ValueError`` naming the argument (``owner.field`` for config fields)
and the allowed values.

Example:
    >>> fraction("Magnitude.sparsity", 1.0, low_open=False, high_open=True)
    Traceback (most recent call last):
    ...
    ValueError: Magnitude.sparsity must be in [0, 1), got 1.0
    >>> exactly_one("SVD", rank=None, energy=0.9, ratio=None)
    'energy'
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np


def choice(argument: str, value: Any, allowed: tuple) -> Any:
    """``value`` if it is one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{argument} must be one of {allowed}, got {value!r}")
    return value


def int_in(argument: str, value: Any, lo: int, hi: Optional[int] = None) -> int:
    """``value`` if it is an integer (not a bool) in ``[lo, hi]`` (``hi=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or \
            (hi is not None and value > hi):
        upper = f", {hi}]" if hi is not None else ", inf)"
        raise ValueError(f"{argument} must be an integer in [{lo}{upper}, got {value!r}")
    return int(value)


def fraction(argument: str, value: Any, *, low_open: bool, high_open: bool) -> float:
    """``value`` if it is a real number in the interval between 0 and 1 with the given open ends."""
    ok = isinstance(value, (int, float, np.floating)) and not isinstance(value, bool)
    if ok:
        ok = (value > 0 if low_open else value >= 0) and (value < 1 if high_open else value <= 1)
    if not ok:
        interval = ("(" if low_open else "[") + "0, 1" + (")" if high_open else "]")
        raise ValueError(f"{argument} must be in {interval}, got {value!r}")
    return float(value)


def exactly_one(owner: str, **fields: Any) -> str:
    """The name of the one field that is not None; ``ValueError`` unless exactly one is given."""
    given = [k for k, v in fields.items() if v is not None]
    if len(given) != 1:
        raise ValueError(f"{owner} needs exactly one of {tuple(fields)}, got {given or 'none'}")
    return given[0]


def sparsity(value: Any, argument: str = "sparsity") -> float:
    """A sparsity in [0, 1)."""
    return fraction(argument, value, low_open=False, high_open=True)
