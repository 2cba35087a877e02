"""GPTQ (Frantar et al., ICLR 2023) and round-to-nearest, framework-free.

Both quantize a weight ``W`` of shape ``(out, in)`` (PyTorch's layout; a Keras kernel is
transposed first) to signed ``bits``-bit integers with one symmetric scale per row and group of
``group_size`` consecutive input channels — exactly the storage of ``WeightOnly`` (codes in
``[-2^(b-1), 2^(b-1) - 1]``, ``scale = max|w| / ((qmax - qmin) / 2)`` over the group), so a GPTQ
result is saved and loaded by the same layers as round-to-nearest.

Round-to-nearest (:func:`rtn`) rounds every weight on its own. GPTQ rounds the input channels one
at a time and spreads each rounding error over the channels not yet rounded, weighted by the
inverse of the layer's input Hessian ``H = 2 XᵀX / n`` (``X``: the inputs the layer sees on
calibration data), which minimises ``‖XWᵀ - XŴᵀ‖²`` greedily. The inverse comes as the upper
Cholesky factor ``U`` of ``H⁻¹`` (``H⁻¹ = UᵀU``): the update after channel ``j`` is
``W[:, j+1:] -= err_j · U[j, j+1:] / U[j, j]`` with ``err_j = w_j - q_j``. Errors are applied
lazily in blocks of ``block_size`` columns (the same result, fewer passes over ``W``).

Choices, and why:

* ``damping``: ``H + damping · mean(diag H) · I`` before inverting (the paper's 1 %); a channel
  that never fired (``H_jj = 0``) gets ``H_jj = 1`` and a zero weight (it cannot matter).
* ``act_order``: channels taken in decreasing ``H_jj`` (the largest inputs first, while many
  channels remain to absorb their error). The group scales are then fixed from the original
  weight before the loop ("static groups"), so that groups stay contiguous input channels and
  the storage needs no permutation index; without ``act_order`` each group's scale is taken
  from the weights as updated so far, when the loop reaches the group (the reference code).
* Symmetric codes, no zero point: the storage that ``WeightOnly`` already has. At 3 bits this
  leaves one code of 8 unused on one side; measured here it is still far better than RTN. It is
  what keeps int3 from clearly beating int4 round-to-nearest on the shipped ``char_gpt``
  (``bench/transformers.py``'s windows; act_order, group 32, 128 calibration windows): held-out
  perplexity 5.704 symmetric against 5.682 with an asymmetric grid and a zero point per group
  (measured in float, no storage for it yet), RTN int4 g128 5.688, fp32 5.618.
* Checked against the reference ``fasterquant`` (IST-DASLab/gptq) line by line in
  ``tests/core/test_gptq_reference.py``: the same codes, except that a group starting inside a
  block takes its scale from the weights with every earlier column's update applied (the exact
  column-by-column algorithm) where the reference reads them without the in-block updates.

Example:
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(512, 64)) @ rng.normal(size=(64, 64))     # correlated inputs
    >>> w = rng.normal(size=(32, 64)).astype(np.float32)
    >>> h = hessian(x)
    >>> g, r = gptq(w, h, bits=4, group_size=16), rtn(w, bits=4, group_size=16)
    >>> ratio = output_error(x, w, g.dequantize()) / output_error(x, w, r.dequantize())
    >>> bool(ratio < 0.8)           # GPTQ's output error: about 0.7 of round-to-nearest's
    True
    >>> int(g.q.min()) >= -8 and int(g.q.max()) <= 7, g.scale.shape
    (True, (32, 4))
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from compresslib.core import quant as cq

BITS = (2, 3, 4, 8)


@dataclass
class Quantized:
    """Integer codes ``q`` ``(out, in)`` (int8) and scales ``(out, in // group_size)`` (float32)."""

    q: np.ndarray
    scale: np.ndarray
    bits: int
    group_size: int

    def dequantize(self) -> np.ndarray:
        """``q · scale`` as float32, shape ``(out, in)``."""
        out, cols = self.q.shape
        s = np.repeat(self.scale, self.group_size, axis=1)
        return (self.q.astype(np.float32) * s).astype(np.float32).reshape(out, cols)


def check_weight(w: np.ndarray, group_size: Optional[int], argument: str = "weight") -> tuple[np.ndarray, int]:
    """``w`` as 2-D float64 and the group size (``None``: the whole row); ``ValueError`` on a misfit."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"{argument} must be a non-empty 2-D (out, in) array, got shape {w.shape}")
    gs = w.shape[1] if group_size is None else int(group_size)
    if gs < 1 or w.shape[1] % gs:
        raise ValueError(f"group_size must divide the layer's fan-in {w.shape[1]}, got {group_size}")
    return w, gs


def hessian(x: np.ndarray) -> np.ndarray:
    """``2 XᵀX / n`` (float64) of inputs ``x`` ``(..., in)``: what GPTQ and SparseGPT need of the data."""
    x = np.asarray(x, dtype=np.float64)
    x = x.reshape(-1, x.shape[-1])
    return 2.0 * (x.T @ x) / max(len(x), 1)


class HessianAccumulator:
    """A running ``2 XᵀX / n`` over batches of rows (``update`` per batch; ``h`` the mean so far).

    Also keeps the mean ``|x|`` per channel and the sum of ``x²`` (AWQ's and Wanda's statistics).

    Example:
        >>> acc = HessianAccumulator(3)
        >>> acc.update(np.ones((4, 3))); acc.update(np.zeros((4, 3)))
        >>> acc.n, float(acc.h[0, 0]), acc.mean_abs.tolist(), acc.norm.tolist()
        (8, 1.0, [0.5, 0.5, 0.5], [2.0, 2.0, 2.0])
    """

    def __init__(self, columns: int) -> None:
        self.sum = np.zeros((columns, columns), np.float64)
        self.abs_sum = np.zeros(columns, np.float64)
        self.n = 0

    def update(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        x = x.reshape(-1, x.shape[-1])
        self.sum += x.T @ x
        self.abs_sum += np.abs(x).sum(0)
        self.n += len(x)

    @property
    def h(self) -> np.ndarray:
        return 2.0 * self.sum / max(self.n, 1)

    @property
    def mean_abs(self) -> np.ndarray:
        """Mean ``|x_j|`` per input channel."""
        return self.abs_sum / max(self.n, 1)

    @property
    def norm(self) -> np.ndarray:
        """``‖x_j‖₂`` over all rows seen, per input channel (Wanda's activation norm)."""
        return np.sqrt(np.diag(self.sum))


SHRINK = tuple(1.0 - 0.02 * i for i in range(16))  # clipping ranges tried by group_scales(search=True)


def group_scales(w: np.ndarray, bits: int, search: bool = False) -> np.ndarray:
    """Symmetric scales of the rows of ``w`` ``(out, k)`` (one per row), as :mod:`compresslib.core.quant`.

    ``search``: per row, the range shrunk by the factor of :data:`SHRINK` whose rounding error
    ``Σ|w - q·s|^2.4`` is smallest (the reference GPTQ's ``mse`` option: clipping a few large weights
    buys a finer grid for the rest, which matters most at 3 bits).
    """
    s, _ = cq.scale_zero_point(w.min(1), w.max(1), bits, symmetric=True)
    s = s.astype(np.float32)
    if not search:
        return s
    best, best_err = s, None
    for shrink in SHRINK:
        trial = np.maximum(s * np.float32(shrink), np.float32(cq.EPS))
        err = (np.abs(w - _round(w, trial[:, None], bits) * trial[:, None]) ** 2.4).sum(1)
        if best_err is None:
            best_err = err
            continue
        better = err < best_err
        best, best_err = np.where(better, trial, best), np.where(better, err, best_err)
    return best.astype(np.float32)


def _round(w: np.ndarray, scale: np.ndarray, bits: int) -> np.ndarray:
    qmin, qmax = cq.qrange(bits)
    inv = (np.float32(1.0) / scale.astype(np.float32)).astype(np.float32)  # float32, as core.quant rounds
    return np.clip(np.rint(w.astype(np.float32) * inv), qmin, qmax).astype(np.float64)


def rtn(w: np.ndarray, bits: int = 4, group_size: Optional[int] = None) -> Quantized:
    """Round-to-nearest with symmetric per-row (per-group) scales: the baseline GPTQ improves on."""
    bits = cq.check_bits(bits)
    w, gs = check_weight(w, group_size)
    out, cols = w.shape
    groups = w.reshape(out, cols // gs, gs)
    scale = np.stack([group_scales(groups[:, g], bits) for g in range(cols // gs)], axis=1)
    q = _round(groups, scale[:, :, None], bits).reshape(out, cols)
    return Quantized(q.astype(np.int8), scale, bits, gs)


def inverse_cholesky(h: np.ndarray, damping: float = 0.01) -> np.ndarray:
    """Upper Cholesky factor ``U`` of ``(H + λI)⁻¹`` (``λ = damping · mean diag H``), ``H⁻¹ = UᵀU``.

    If the damped ``H`` is still not positive definite (rank-poor calibration data), the damping
    is multiplied by 10 until it is (at most 6 times).
    """
    h = np.asarray(h, dtype=np.float64)
    mean_diag = float(np.mean(np.diag(h))) or 1.0
    lam = damping * mean_diag
    eye = np.eye(len(h))
    flip = np.arange(len(h))[::-1]
    for _ in range(7):
        try:
            # with J the flip, J H J = L Lᵀ gives H⁻¹ = (J L⁻¹ J)ᵀ (J L⁻¹ J), J L⁻¹ J upper: one factorisation
            lower = np.linalg.cholesky((h + lam * eye)[np.ix_(flip, flip)])
            inv = np.linalg.solve(lower, eye)
            return np.tril(inv)[np.ix_(flip, flip)]
        except np.linalg.LinAlgError:
            lam = max(lam * 10, 1e-8 * mean_diag)
    raise ValueError("the layer's input Hessian is not positive definite even with damping; give more "
                     "varied calibration_data")


def prepare(w: np.ndarray, h: np.ndarray, damping: float, act_order: bool) -> tuple:
    """Dead channels zeroed, columns permuted (``act_order``), ``U``; returns ``(w, u, perm)``."""
    h = np.array(h, dtype=np.float64, copy=True)
    if h.shape != (w.shape[1], w.shape[1]):
        raise ValueError(f"hessian must be ({w.shape[1]}, {w.shape[1]}) for a weight {w.shape}, got {h.shape}")
    w = w.copy()
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    perm = np.argsort(-np.diag(h), kind="stable") if act_order else np.arange(w.shape[1])
    w, h = w[:, perm], h[np.ix_(perm, perm)]
    return w, inverse_cholesky(h, damping), perm


def gptq(w: np.ndarray, h: np.ndarray, bits: int = 4, group_size: Optional[int] = None,
         act_order: bool = False, damping: float = 0.01, block_size: int = 128,
         clip_search: bool = True) -> Quantized:
    """GPTQ of ``w`` ``(out, in)`` given the input Hessian ``h`` ``(in, in)`` (see the module docstring).

    ``clip_search``: each group's range chosen by :func:`group_scales` ``(search=True)`` (on by default,
    as the reference implementation's ``mse`` option; measured on a layer with heavy-tailed weights: int3
    output error 0.142 → 0.128, int4 0.0685 → 0.0681).
    """
    bits = cq.check_bits(bits)
    w, gs = check_weight(w, group_size)
    if not 0.0 <= float(damping) < 1.0:
        raise ValueError(f"damping must be in [0, 1), got {damping!r}")
    out, cols = w.shape
    scale = np.zeros((out, cols // gs), np.float32)
    if act_order or gs == cols:  # static scales from the original weight
        for g in range(cols // gs):
            scale[:, g] = group_scales(w[:, g * gs:(g + 1) * gs], bits, clip_search)
    w, u, perm = prepare(w, h, damping, act_order)
    static = act_order or gs == cols
    # blocks hold whole groups, so a group's scale is read from weights all updated to the same point
    block = gs * max(1, block_size // gs) if not static else block_size
    q = np.zeros_like(w)
    for i1 in range(0, cols, block):
        i2 = min(i1 + block, cols)
        w1 = w[:, i1:i2].copy()
        err = np.zeros_like(w1)
        u1 = u[i1:i2, i1:i2]
        for i in range(i2 - i1):
            col = perm[i1 + i]
            if not static and col % gs == 0:
                scale[:, col // gs] = group_scales(w1[:, i:i + gs], bits, clip_search)
            s = scale[:, col // gs]
            qi = _round(w1[:, i], s, bits)
            q[:, i1 + i] = qi
            e = (w1[:, i] - qi * s) / u1[i, i]
            w1[:, i:] -= np.outer(e, u1[i, i:])
            err[:, i] = e
        w[:, i2:] -= err @ u[i1:i2, i2:]
    codes = np.empty_like(q)
    codes[:, perm] = q
    return Quantized(codes.astype(np.int8), scale, bits, gs)


def output_error(x: np.ndarray, w: np.ndarray, w_hat: np.ndarray) -> float:
    """Relative output error ``‖X Wᵀ - X Ŵᵀ‖_F / ‖X Wᵀ‖_F`` (rows of ``x``: inputs of the layer)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, np.shape(w)[1])
    ref = x @ np.asarray(w, np.float64).T
    return float(np.linalg.norm(ref - x @ np.asarray(w_hat, np.float64).T) / max(np.linalg.norm(ref), 1e-30))


__all__ = ["SHRINK", "BITS", "Quantized", "HessianAccumulator", "hessian", "group_scales", "rtn", "inverse_cholesky",
           "prepare", "gptq", "output_error", "check_weight"]
