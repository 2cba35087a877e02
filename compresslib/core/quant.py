"""Quantization math in NumPy, written once and used by both backends.

Affine (asymmetric) and symmetric uniform quantization with ``bits`` in 2..8,
per tensor, per channel (one scale per slice along ``axis``) or per group
(one scale per ``group_size`` consecutive elements along ``axis``), with the
range chosen by an observer: ``minmax``, ``moving_average`` (min-max averaged
over batches), ``percentile`` or ``mse`` (the clipping range that minimises
the squared error of fake-quantization, searched on a grid).

The formulas follow PyTorch's observers exactly, so the same float weights give
the same integers and scales through the torch and the Keras path:

* symmetric, signed: ``scale = max(|min|, max) / ((qmax - qmin) / 2)``, zero point 0;
* affine: ``scale = (max - min) / (qmax - qmin)``, ``zp = qmin - round(min / scale)``;

with the range always stretched to include 0, so that 0.0 is exactly representable,
and ``scale >= float32 eps``. Rounding is round-half-to-even (``np.rint``) of
``x * (1 / scale)`` in float32, which is what PyTorch's kernels compute.

Example:
    >>> import numpy as np
    >>> x = np.array([-1.0, 0.0, 0.5, 1.0], dtype=np.float32)
    >>> qt = quantize_tensor(x, bits=8, symmetric=True)
    >>> qt.q.tolist(), float(qt.scale)
    ([-127, 0, 64, 127], 0.007843137718737125)
    >>> float(np.abs(qt.dequantize() - x).max()) <= float(qt.scale) / 2
    True
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import numpy as np

EPS = float(np.finfo(np.float32).eps)
OBSERVERS = ("minmax", "moving_average", "percentile", "mse")


def check_bits(bits: int, argument: str = "bits") -> int:
    """Return ``bits`` if it is an integer in [2, 8], else raise ``ValueError`` naming ``argument``."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 2 <= int(bits) <= 8:
        raise ValueError(f"{argument} must be an integer in [2, 8], got {bits!r}")
    return int(bits)


def qrange(bits: int, signed: bool = True, reduce_range: bool = False) -> tuple[int, int]:
    """The integer range: signed ``[-2^(b-1), 2^(b-1)-1]`` or unsigned ``[0, 2^b - 1]``.

    ``reduce_range`` drops one bit (PyTorch's x86 activations use it to avoid overflow).

    >>> qrange(8), qrange(8, signed=False), qrange(4)
    ((-128, 127), (0, 255), (-8, 7))
    """
    bits = check_bits(bits) - (1 if reduce_range else 0)
    if signed:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def _reduce_axes(x: np.ndarray, axis: Optional[int]) -> Optional[tuple]:
    if axis is None:
        return None
    axis = axis % x.ndim
    return tuple(i for i in range(x.ndim) if i != axis)


def minmax(x: np.ndarray, axis: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Min and max over the whole tensor, or per slice along ``axis``."""
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        raise ValueError("x must not be empty")
    axes = _reduce_axes(x, axis)
    return np.min(x, axis=axes), np.max(x, axis=axes)


def moving_average_minmax(batches: Iterable[np.ndarray], momentum: float = 0.01,
                          axis: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """Min-max averaged over batches: ``r <- r + momentum (r_batch - r)`` (PyTorch's rule)."""
    lo = hi = None
    for b in batches:
        bl, bh = minmax(b, axis)
        if lo is None:
            lo, hi = bl, bh
        else:
            lo, hi = lo + momentum * (bl - lo), hi + momentum * (bh - hi)
    if lo is None:
        raise ValueError("batches must not be empty")
    return np.asarray(lo, np.float32), np.asarray(hi, np.float32)


def percentile_range(x: np.ndarray, percentile: float = 99.99,
                     axis: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``(100 - p)``-th and ``p``-th percentiles: outliers beyond them are clipped."""
    if not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be in (50, 100], got {percentile!r}")
    x = np.asarray(x, dtype=np.float32)
    axes = _reduce_axes(x, axis)
    return (np.percentile(x, 100.0 - percentile, axis=axes).astype(np.float32),
            np.percentile(x, percentile, axis=axes).astype(np.float32))


def scale_zero_point(lo, hi, bits: int = 8, symmetric: bool = True, signed: bool = True,
                     reduce_range: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Scale and zero point for the range ``[lo, hi]`` (stretched to include 0), as PyTorch computes them."""
    qmin, qmax = qrange(bits, signed, reduce_range)
    lo = np.minimum(np.asarray(lo, np.float32), np.float32(0))
    hi = np.maximum(np.asarray(hi, np.float32), np.float32(0))
    if symmetric:
        amax = np.maximum(-lo, hi)
        scale = (amax / np.float32((qmax - qmin) / 2)).astype(np.float32)
        scale = np.maximum(scale, np.float32(EPS))
        zp_value = 0 if signed else (qmin + qmax + 1) // 2
        zp = np.full(scale.shape, zp_value, dtype=np.int64)
    else:
        scale = ((hi - lo) / np.float32(qmax - qmin)).astype(np.float32)
        scale = np.maximum(scale, np.float32(EPS))
        zp = np.clip(qmin - np.rint(lo / scale).astype(np.int64), qmin, qmax)
    return scale, zp


def _expand(v: np.ndarray, x: np.ndarray, axis: Optional[int]) -> np.ndarray:
    v = np.asarray(v)
    if axis is None or v.ndim == 0:
        return v
    shape = [1] * x.ndim
    shape[axis % x.ndim] = -1
    return v.reshape(shape)


def quantize(x, scale, zero_point, bits: int = 8, signed: bool = True, axis: Optional[int] = None,
             reduce_range: bool = False) -> np.ndarray:
    """Integers ``clip(rint(x / scale) + zp, qmin, qmax)`` (int32 array)."""
    x = np.asarray(x, dtype=np.float32)
    qmin, qmax = qrange(bits, signed, reduce_range)
    s, z = _expand(np.asarray(scale, np.float32), x, axis), _expand(zero_point, x, axis)
    inv = (np.float32(1.0) / s).astype(np.float32)  # multiply by 1/scale in float32, as PyTorch's kernels do
    return np.clip(np.rint(x * inv) + z, qmin, qmax).astype(np.int32)


def dequantize(q, scale, zero_point, axis: Optional[int] = None) -> np.ndarray:
    """Floats ``(q - zp) * scale``."""
    q = np.asarray(q)
    s, z = _expand(np.asarray(scale, np.float32), q, axis), _expand(zero_point, q, axis)
    return ((q.astype(np.int64) - z) * s).astype(np.float32)


def fake_quantize(x, scale, zero_point, bits: int = 8, signed: bool = True, axis: Optional[int] = None) -> np.ndarray:
    """``dequantize(quantize(x))``: the float values the integer model will see."""
    return dequantize(quantize(x, scale, zero_point, bits, signed, axis), scale, zero_point, axis)


def mse_range(x: np.ndarray, bits: int = 8, symmetric: bool = True, axis: Optional[int] = None,
              grid: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """The clipped range ``alpha * [min, max]`` (alpha on a grid in (0, 1]) with the least squared error.

    Written for compresslib (no NumPy library does it): a coarse version of the
    MSE observers in TensorRT and torchao.
    """
    x = np.asarray(x, dtype=np.float32)
    lo, hi = minmax(x, axis)
    best_err = best_lo = best_hi = None
    for alpha in np.linspace(1.0, 1.0 / grid, grid, dtype=np.float32):
        l, h = lo * alpha, hi * alpha
        s, z = scale_zero_point(l, h, bits, symmetric)
        err = (fake_quantize(x, s, z, bits, True, axis) - x) ** 2
        err = err.mean(axis=_reduce_axes(x, axis)) if axis is not None else err.mean()
        if best_err is None:
            best_err, best_lo, best_hi = err, l, h
        else:
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best_lo, best_hi = np.where(better, l, best_lo), np.where(better, h, best_hi)
    return np.asarray(best_lo, np.float32), np.asarray(best_hi, np.float32)


def observe(x: np.ndarray, observer: str = "minmax", bits: int = 8, symmetric: bool = True,
            axis: Optional[int] = None, percentile: float = 99.99) -> tuple[np.ndarray, np.ndarray]:
    """The range ``(lo, hi)`` chosen by ``observer`` (one of :data:`OBSERVERS`)."""
    if observer == "minmax":
        return minmax(x, axis)
    if observer == "moving_average":
        x = np.asarray(x, np.float32)
        return moving_average_minmax(np.array_split(x, max(1, min(len(x), 8))), axis=axis)
    if observer == "percentile":
        return percentile_range(x, percentile, axis)
    if observer == "mse":
        return mse_range(x, bits, symmetric, axis)
    raise ValueError(f"observer must be one of {OBSERVERS}, got {observer!r}")


@dataclass
class QTensor:
    """Integers plus the scale(s) and zero point(s) that map them back to floats."""

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    bits: int
    axis: Optional[int] = None
    group_size: Optional[int] = None
    shape: Optional[tuple] = None

    def dequantize(self) -> np.ndarray:
        if self.group_size is None:
            return dequantize(self.q, self.scale, self.zero_point, self.axis)
        grouped = _to_groups(self.q, self.axis, self.group_size)
        return _from_groups(dequantize(grouped, self.scale, self.zero_point, 0), self.shape, self.axis)


def _to_groups(x: np.ndarray, axis: int, group_size: int) -> np.ndarray:
    """Rows of ``group_size`` consecutive elements along ``axis``: shape ``(n_groups, group_size)``."""
    moved = np.moveaxis(x, axis, -1)
    if moved.shape[-1] % group_size:
        raise ValueError(f"group_size must divide the size {moved.shape[-1]} of axis {axis}, got {group_size}")
    return moved.reshape(-1, group_size)


def _from_groups(g: np.ndarray, shape: tuple, axis: int) -> np.ndarray:
    moved_shape = list(np.moveaxis(np.empty(shape, dtype=np.bool_), axis, -1).shape)
    return np.moveaxis(g.reshape(moved_shape), -1, axis)


def quantize_tensor(x, bits: int = 8, symmetric: bool = True, axis: Optional[int] = None,
                    group_size: Optional[int] = None, observer: str = "minmax",
                    percentile: float = 99.99) -> QTensor:
    """Quantize ``x`` per tensor (``axis=None``), per channel (``axis``) or per group.

    With ``group_size`` the groups run along ``axis`` (the input-channel axis of a
    weight), each group with its own scale.
    """
    bits = check_bits(bits)
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        raise ValueError("x must not be empty")
    if group_size is not None:
        if axis is None:
            raise ValueError("group_size needs axis (the axis the groups run along)")
        g = _to_groups(x, axis, int(group_size))
        lo, hi = observe(g, observer, bits, symmetric, 0, percentile)
        s, z = scale_zero_point(lo, hi, bits, symmetric)
        q = _from_groups(quantize(g, s, z, bits, True, 0), x.shape, axis)
        return QTensor(q, s, z, bits, axis, int(group_size), x.shape)
    lo, hi = observe(x, observer, bits, symmetric, axis, percentile)
    s, z = scale_zero_point(lo, hi, bits, symmetric)
    return QTensor(quantize(x, s, z, bits, True, axis), s, z, bits, axis, None, x.shape)


def sqnr_db(x: np.ndarray, approx: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB: ``10 log10(|x|^2 / |x - approx|^2)``."""
    x, approx = np.asarray(x, np.float64), np.asarray(approx, np.float64)
    noise = float(np.sum((x - approx) ** 2))
    return float("inf") if noise == 0 else 10.0 * np.log10(float(np.sum(x ** 2)) / noise)


def check_calibration(x, argument: str = "calibration_data", feature_shape: Optional[tuple] = None) -> np.ndarray:
    """Validate calibration inputs: a non-empty float array with a batch axis (and the model's feature shape)."""
    if x is None:
        raise ValueError(f"{argument} is required for static quantization: an array of example inputs")
    if isinstance(x, (tuple, list)) and len(x) == 2 and np.ndim(x[0]) >= 2:
        x = x[0]
    try:
        arr = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{argument} must be an array of inputs, got {type(x).__name__}") from exc
    if arr.ndim < 2 or arr.shape[0] == 0:
        raise ValueError(f"{argument} must be a non-empty batch of inputs (N, ...), got shape {arr.shape}")
    if feature_shape is not None and tuple(arr.shape[1:]) != tuple(feature_shape):
        raise ValueError(f"{argument} must have shape (N, {', '.join(map(str, feature_shape))}), got {arr.shape}")
    return arr


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Two signed 4-bit integers (in [-8, 7]) per byte, low nibble first; flattened, padded to even length.

    >>> unpack_int4(pack_int4(np.array([-8, 7, 3], dtype=np.int8)), 3).tolist()
    [-8, 7, 3]
    """
    flat = np.asarray(q).reshape(-1).astype(np.int16)
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("q must hold 4-bit integers in [-8, 7]")
    u = (flat + 8).astype(np.uint8)
    if u.size % 2:
        u = np.concatenate([u, np.zeros(1, np.uint8)])
    return (u[0::2] | (u[1::2] << 4)).astype(np.uint8)


def unpack_int4(packed: np.ndarray, n: int) -> np.ndarray:
    """Inverse of :func:`pack_int4`: the first ``n`` signed 4-bit integers as int8."""
    packed = np.asarray(packed, np.uint8)
    out = np.empty(packed.size * 2, np.int8)
    out[0::2] = (packed & 0x0F).astype(np.int8) - 8
    out[1::2] = (packed >> 4).astype(np.int8) - 8
    return out[:n]


def pack_bits(q: np.ndarray, bits: int) -> np.ndarray:
    """Signed ``bits``-bit integers as a little-endian bit stream: ``ceil(n · bits / 8)`` bytes (any bits 2..8).

    >>> unpack_bits(pack_bits(np.array([-4, 3, 0, -1, 2], dtype=np.int8), 3), 5, 3).tolist()
    [-4, 3, 0, -1, 2]
    >>> pack_bits(np.zeros(8, np.int8), 3).size
    3
    """
    bits = check_bits(bits)
    lo, hi = qrange(bits)
    flat = np.asarray(q).reshape(-1).astype(np.int16)
    if flat.size and (flat.min() < lo or flat.max() > hi):
        raise ValueError(f"q must hold {bits}-bit integers in [{lo}, {hi}]")
    u = (flat - lo).astype(np.uint8)
    stream = ((u[:, None] >> np.arange(bits, dtype=np.uint8)) & 1).astype(np.uint8).reshape(-1)
    return np.packbits(stream, bitorder="little")


def unpack_bits(packed: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: the first ``n`` signed ``bits``-bit integers as int8."""
    stream = np.unpackbits(np.asarray(packed, np.uint8), bitorder="little")[: n * bits].reshape(n, bits)
    u = (stream.astype(np.int16) << np.arange(bits, dtype=np.int16)).sum(1)
    return (u + qrange(bits)[0]).astype(np.int8)

