"""Data-aware pruning scores and updates, framework-free: Wanda and SparseGPT.

* Wanda (Sun et al., ICLR 2024): score ``|W_ij| · ‖x_j‖₂`` (the weight times the norm of its input
  channel over calibration rows), compared within each output row; no update of the kept weights.
* SparseGPT (Frantar & Alistarh, ICML 2023): the optimal-brain-surgeon update of GPTQ with pruning
  instead of rounding. Columns are visited in order; within each block of ``block_size`` columns the
  mask keeps the largest ``w² / [H⁻¹]_jj²`` (unstructured: per block, so the sparsity adapts to the
  columns; N:M: per group of ``m`` columns of each row), and each pruned weight's error is spread
  over the columns not yet visited through the Cholesky factor of ``H⁻¹`` (see
  :mod:`compresslib.core.gptq`).

Both take the weight output-major ``(out, in)`` and return the mask (True = kept), and SparseGPT
also the updated weight (zeros where pruned). N:M here is "at most ``n`` non-zeros in every ``m``
consecutive inputs" (the ``NM`` config's meaning; 2:4 keeps 2 of 4).

Example:
    >>> import numpy as np
    >>> from compresslib.core.gptq import hessian, output_error
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(512, 64)) @ rng.normal(size=(64, 64))
    >>> w = rng.normal(size=(32, 64))
    >>> keep = wanda_mask(w, np.linalg.norm(x, axis=0), sparsity=0.5)
    >>> int(keep.sum()), int(keep[0].sum())        # half of every row
    (1024, 32)
    >>> pruned, kept = sparsegpt(w, hessian(x), sparsity=0.5)
    >>> bool(output_error(x, w, pruned) < output_error(x, w, w * keep))
    True
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from compresslib.core import masks as core_masks
from compresslib.core.gptq import check_weight, prepare


def _check_target(sparsity: Optional[float], n: Optional[int], m: Optional[int], cols: int) -> None:
    if (sparsity is None) == (n is None or m is None):
        raise ValueError("give either sparsity or n and m")
    if sparsity is not None:
        core_masks.n_to_prune(cols, sparsity)  # validates
    elif cols % m:
        raise ValueError(f"weight: fan-in {cols} is not a multiple of m={m}")


def wanda_scores(w: np.ndarray, norm: np.ndarray) -> np.ndarray:
    """``|W| · ‖x‖`` with ``norm`` the per-input-channel activation norm ``(in,)``."""
    w = np.asarray(w, np.float64)
    norm = np.asarray(norm, np.float64).reshape(-1)
    if w.ndim != 2 or norm.shape != (w.shape[1],):
        raise ValueError(f"norm must have shape ({np.shape(w)[-1]},) for a weight {np.shape(w)}, got {norm.shape}")
    return np.abs(w) * norm[None, :]


def wanda_mask(w: np.ndarray, norm: np.ndarray, sparsity: Optional[float] = None, n: Optional[int] = None,
               m: Optional[int] = None) -> np.ndarray:
    """Wanda's mask: per row, the ``round(sparsity · in)`` smallest scores pruned; or N:M by score."""
    scores = wanda_scores(w, norm)
    _check_target(sparsity, n, m, scores.shape[1])
    if sparsity is None:
        return core_masks.nm_mask(scores, n, m)
    k = core_masks.n_to_prune(scores.shape[1], sparsity)
    keep = np.ones(scores.shape, bool)
    if k:
        np.put_along_axis(keep, np.argsort(scores, axis=1, kind="stable")[:, :k], False, axis=1)
    return keep


def sparsegpt(w: np.ndarray, h: np.ndarray, sparsity: Optional[float] = None, n: Optional[int] = None,
              m: Optional[int] = None, damping: float = 0.01, block_size: int = 128) -> tuple[np.ndarray, np.ndarray]:
    """SparseGPT of ``w`` ``(out, in)`` with input Hessian ``h``: ``(updated weight float32, keep mask)``."""
    w, _ = check_weight(w, None)
    out, cols = w.shape
    _check_target(sparsity, n, m, cols)
    if m is not None:
        block_size = max(m, block_size - block_size % m)
    w, u, _ = prepare(w, h, damping, act_order=False)
    keep = np.ones_like(w, dtype=bool)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].copy()
        err = np.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        d = np.diag(u1)
        k1 = keep[:, i1:i2]
        if sparsity is not None:
            score = w1 ** 2 / d[None, :] ** 2
            k = core_masks.n_to_prune(score.size, sparsity)
            flat = k1.reshape(-1)
            flat[np.argsort(score.reshape(-1), kind="stable")[:k]] = False
            k1[:] = flat.reshape(k1.shape)
        for i in range(i2 - i1):
            if m is not None and i % m == 0:
                score = w1[:, i:i + m] ** 2 / d[None, i:i + m] ** 2
                k1[:, i:i + m] = core_masks.nm_mask(np.sqrt(score), n, m)
            col = w1[:, i]
            q = np.where(k1[:, i], col, 0.0)
            e = (col - q) / u1[i, i]
            w1[:, i:] -= np.outer(e, u1[i, i:])
            w1[:, i] = q
            err[:, i] = e
        w[:, i1:i2] = w1
        w[:, i2:] -= err @ u[i1:i2, i2:]
    w[~keep] = 0.0
    return w.astype(np.float32), keep


__all__ = ["wanda_scores", "wanda_mask", "sparsegpt"]
