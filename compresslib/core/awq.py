"""AWQ (Lin et al., MLSys 2024): activation-aware per-input-channel scales before rounding, framework-free.

A weight column ``j`` whose input channel carries large activations matters more: scaling it up by
``s_j`` before round-to-nearest (and the input down by ``s_j``) shrinks its relative rounding error.
The scales are ``s = mean|x|^α`` (normalised so that ``√(max s · min s) = 1``), with ``α`` searched on
a grid in ``[0, 1)`` for the smallest output error ``‖X Wᵀ - (X / s)(Q(W·s))ᵀ‖`` on calibration rows;
``α = 0`` is plain round-to-nearest, so the search never does worse than RTN on those rows.

Where the paper folds ``1/s`` into the previous operation (a LayerNorm) and shares one ``s`` among
the layers that read the same input, compresslib keeps ``s`` with each layer (one float per input
channel, next to its group scales): any Linear/Dense layer can be handled, whatever precedes it,
and each layer gets its own best ``α``. The cost is ``in`` floats per layer on disk and one
division of the input per call.

Example:
    >>> import numpy as np
    >>> from compresslib.core.gptq import output_error, rtn
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(512, 64)) * np.r_[np.full(4, 30.0), np.ones(60)]   # 4 outlier channels
    >>> w = rng.normal(size=(32, 64)).astype(np.float32)
    >>> found = search(w, x, bits=4, group_size=16)
    >>> bool(found.error < output_error(x, w, rtn(w, 4, 16).dequantize())), found.alpha > 0
    (True, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from compresslib.core.gptq import Quantized, check_weight, output_error, rtn

GRID = tuple(i / 20 for i in range(20))  # α = 0, 0.05, ..., 0.95 (the paper's grid)


@dataclass
class Found:
    """The search's result: ``quantized`` holds the codes of ``W · s``; the layer computes ``(x / s) Q``."""

    quantized: Quantized
    input_scale: np.ndarray
    alpha: float
    error: float
    rtn_error: float

    def dequantize(self) -> np.ndarray:
        """The effective weight ``Q / s`` ``(out, in)`` (float32)."""
        return (self.quantized.dequantize() / self.input_scale[None, :]).astype(np.float32)


def scales_for(mean_abs: np.ndarray, alpha: float) -> np.ndarray:
    """``mean|x|^α`` normalised to ``√(max · min) = 1`` (float32, clamped away from 0)."""
    s = np.maximum(np.asarray(mean_abs, np.float64), 1e-8) ** float(alpha)
    s = s / np.sqrt(s.max() * s.min())
    return np.maximum(s, 1e-4).astype(np.float32)


def search(w: np.ndarray, x: np.ndarray, bits: int = 4, group_size: Optional[int] = None,
           mean_abs: Optional[np.ndarray] = None, grid: tuple = GRID) -> Found:
    """The ``α`` of ``grid`` with the smallest output error on the rows of ``x`` ``(n, in)``.

    ``mean_abs``: mean ``|x|`` per input channel over all calibration data (default: over ``x``).
    """
    w64, _ = check_weight(w, group_size)
    x = np.asarray(x, np.float64).reshape(-1, w64.shape[1])
    mean_abs = np.abs(x).mean(0) if mean_abs is None else np.asarray(mean_abs, np.float64)
    if mean_abs.shape != (w64.shape[1],):
        raise ValueError(f"mean_abs must have shape ({w64.shape[1]},), got {mean_abs.shape}")
    x32 = x.astype(np.float32)
    ref = x32 @ w64.T.astype(np.float32)
    norm = max(float(np.linalg.norm(ref)), 1e-30)
    best: Optional[Found] = None
    base = None
    for alpha in grid:
        s = scales_for(mean_abs, alpha)
        q = rtn(w64 * s[None, :], bits, group_size)
        err = float(np.linalg.norm(ref - x32 @ (q.dequantize() / s[None, :]).T) / norm)
        base = err if base is None else base
        if best is None or err < best.error:
            best = Found(q, s, float(alpha), err, base)
    assert best is not None
    best.rtn_error = base if 0.0 in grid else output_error(x, w64, rtn(w64, bits, group_size).dequantize())
    return best


__all__ = ["GRID", "Found", "scales_for", "search"]
