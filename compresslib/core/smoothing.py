"""SmoothQuant's per-channel scales (Xiao et al. 2023), framework-free.

A Linear layer's input channel ``j`` is divided by ``s_j`` and the weight column ``j`` multiplied by
it; the division is folded into the op that produced the input (a LayerNorm's scale and shift, or
a Linear layer's output row), so the float function is unchanged while activation outliers move
into the weights, which quantize more easily. ``s_j = a_j^alpha / w_j^(1 - alpha)`` with ``a_j``
the largest ``|input_j|`` seen on calibration data and ``w_j`` the largest ``|W[:, j]|`` over every
layer that reads the channel.

Example:
    >>> import numpy as np
    >>> smoothing_scales(np.array([4.0, 1.0]), np.array([1.0, 4.0]), alpha=0.5).tolist()
    [2.0, 0.5]
"""
from __future__ import annotations

import warnings
from typing import Any

import numpy as np

EPS = 1e-5  # activation and weight maxima, and the scales, are clamped here (a dead channel keeps scale EPS)


def check_alpha(alpha: object, what: str = "alpha") -> float:
    """``alpha`` as a float in [0, 1] (the migration strength); ``ValueError`` naming ``what`` otherwise."""
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"{what} must be in [0, 1], got {alpha!r}")
    return float(alpha)


def smoothing_scales(activation_max: np.ndarray, weight_max: np.ndarray, alpha: float) -> np.ndarray:
    """``s = a^alpha / w^(1 - alpha)`` per input channel (float32), ``a`` and ``w`` and ``s`` clamped at :data:`EPS`."""
    alpha = check_alpha(alpha)
    a = np.maximum(np.asarray(activation_max, dtype=np.float32), EPS)
    w = np.maximum(np.asarray(weight_max, dtype=np.float32), EPS)
    if a.shape != w.shape or a.ndim != 1:
        raise ValueError(f"activation_max {a.shape} and weight_max {w.shape} must be 1-D of the same length")
    return np.maximum(a ** np.float32(alpha) / w ** np.float32(1.0 - alpha), EPS).astype(np.float32)


def check_calibration(calibration_data: Any) -> None:
    """``ValueError`` naming ``calibration_data`` when it is missing (the scales need activation ranges)."""
    if calibration_data is None:
        raise ValueError("calibration_data: SmoothQuant needs example inputs to record activation ranges "
                         "(a few hundred rows, or an iterable of batches)")


def warn_no_pairs(model_name: str, norm: str, reader: str) -> None:
    """The one warning of a model in which no ``norm`` layer is read only by ``reader`` layers."""
    warnings.warn(f"SmoothQuant: no {norm} of {model_name} is read only by {reader} layers (a post-LayerNorm "
                  "model's LayerNorms also feed a residual); the model is returned unchanged",
                  UserWarning, stacklevel=4)


__all__ = ["EPS", "check_alpha", "check_calibration", "smoothing_scales", "warn_no_pairs"]
