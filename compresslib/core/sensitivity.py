"""Sensitivity scans: one layer at a time, each at several levels, scored by a callback (framework-free).

The backends' ``sensitivity`` functions (quantization: bits; pruning: sparsity)
supply the per-layer variant and the evaluation; the loop and the result's
shape live here once.

Example:
    >>> scan(["a", "b"], [0.5, 0.9], lambda name, level: round(level * (2 if name == "b" else 1), 2))
    {'a': [0.5, 0.9], 'b': [1.0, 1.8]}
    >>> scan(["a"], [4], lambda name, level: level / 8, flat=True)
    {'a': 0.5}
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence


def scan(layers: Iterable[str], levels: Sequence[Any], score: Callable[[str, Any], float],
         flat: bool = False) -> dict[str, Any]:
    """``{layer: [score(layer, level) for level in levels]}`` (``flat=True`` with one level: ``{layer: score}``)."""
    levels = list(levels)
    if not levels:
        raise ValueError("levels must not be empty")
    if flat and len(levels) != 1:
        raise ValueError(f"flat=True needs exactly one level, got {len(levels)}")
    out = {name: [float(score(name, level)) for level in levels] for name in layers}
    return {k: v[0] for k, v in out.items()} if flat else out
