"""Public helpers shared by every encoding of a ``.clz`` tensor (:mod:`compresslib.core.packing` chooses among them).

Checking what a file says (dtypes, shapes, sizes, stored parts) and narrowing an array to the
smallest exact dtype. The encodings (:mod:`.basic`, :mod:`.entropy`) and the ``.clz`` reader use them.

Example:
    >>> n_elements((3, 4)), short("x" * 100, limit=10), check_shape([2, 3])
    (12, "'xxxxx...", (2, 3))
    >>> part({"values": [1, 2]}, "values", {"encoding": "dense"}).tolist()
    [1, 2]
    >>> part({}, "mask", {"encoding": "bitmask"})
    Traceback (most recent call last):
    ...
    ValueError: encoding 'bitmask' needs a stored array 'mask'; got []
"""
from __future__ import annotations

from typing import Callable

import numpy as np

Encoded = tuple[dict, dict[str, np.ndarray]]
Decoder = Callable[[dict, dict, tuple, np.dtype], np.ndarray]

# The numeric dtypes a tensor (and any stored part of one) may have; nothing else is read back.
DTYPES = ("bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128")

# Encodings whose decoded size is not bounded by the stored data (constant, compressed mask,
# CSR zeros) refuse more elements than this, so a corrupt file cannot ask for terabytes.
# (compresslib.io also bounds the decoded bytes of a whole file before decoding any tensor.)
MAX_EXPANDED_ELEMENTS = 2 ** 34
# More dimensions than any model tensor has (NumPy allows 64); a longer shape is refused.
MAX_NDIM = 32


def check_dtype(name: object, what: str = "dtype") -> np.dtype:
    """``np.dtype(name)`` when ``name`` is one of :data:`DTYPES`; ``ValueError`` otherwise."""
    if not isinstance(name, str) or name not in DTYPES:
        raise ValueError(f"{what} {name!r} is not an allowed numeric dtype; allowed: {DTYPES}")
    return np.dtype(name)


def check_shape(shape: object, what: str = "shape") -> tuple[int, ...]:
    """``shape`` as a tuple of at most :data:`MAX_NDIM` non-negative ints; ``ValueError`` otherwise."""
    if not isinstance(shape, (list, tuple)) or not all(
            isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ValueError(f"{what} must be a list of non-negative integers, got {short(shape)}")
    if len(shape) > MAX_NDIM:
        raise ValueError(f"{what} has {len(shape)} dimensions; at most {MAX_NDIM} are allowed")
    return tuple(shape)


def short(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (error messages about a corrupt file stay readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def n_elements(shape: tuple[int, ...]) -> int:
    """Elements of an array of ``shape`` (Python ints: no overflow for a corrupt file's huge shape)."""
    n = 1
    for d in shape:
        n *= d
    return n


def part(arrays: dict, name: str, meta: dict) -> np.ndarray:
    """The stored array ``name`` of an encoded tensor; ``ValueError`` naming the encoding when it is missing."""
    if name not in arrays:
        raise ValueError(f"encoding {meta.get('encoding')!r} needs a stored array {name!r}; got {sorted(arrays)}")
    return np.asarray(arrays[name])


# --------------------------------------------------------------------------- narrowing
_INT_CANDIDATES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
_UINT_CANDIDATES = (np.uint8, np.uint16, np.uint32)
_FLOAT_CANDIDATES = (np.float16, np.float32)
_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` hold the same bits (NaN payloads, infinities and ``-0.0`` told apart)."""
    if a.dtype.kind == "c":
        return same_bits(a.real, b.real) and same_bits(a.imag, b.imag)
    bits = _BITS[a.dtype.itemsize]
    return bool(np.array_equal(np.ascontiguousarray(a).view(bits), np.ascontiguousarray(b).view(bits)))


def narrow(array: np.ndarray) -> np.ndarray:
    """The array in the narrowest dtype that holds it exactly (itself when none is narrower).

    Integers: the narrowest integer dtype holding their min and max. Floats: float16 or
    float32 when casting there and back gives the same bits. Other dtypes are left alone.

    Example:
        >>> narrow(np.array([1, 200], dtype=np.int64)).dtype, narrow(np.array([0.1])).dtype
        (dtype('uint8'), dtype('float64'))
        >>> narrow(np.array([0.5, -0.0, np.inf])).dtype
        dtype('float16')
    """
    array = np.asarray(array)
    if array.size == 0:
        return array
    kind = array.dtype.kind
    if kind in "iu":
        lo, hi = int(array.min()), int(array.max())
        for cand in (_INT_CANDIDATES if kind == "i" else _UINT_CANDIDATES):
            info = np.iinfo(cand)
            if np.dtype(cand).itemsize >= array.dtype.itemsize:
                break
            if info.min <= lo and hi <= info.max:
                return array.astype(cand)
        return array
    if kind == "f":
        for cand in _FLOAT_CANDIDATES:
            if np.dtype(cand).itemsize >= array.dtype.itemsize:
                break
            with np.errstate(over="ignore", invalid="ignore"):
                small = array.astype(cand)
                back = small.astype(array.dtype)
            if same_bits(back, array):
                return small
        return array
    return array


__all__ = ["Encoded", "Decoder", "DTYPES", "MAX_EXPANDED_ELEMENTS", "MAX_NDIM", "check_dtype", "check_shape", "short",
           "n_elements", "part", "same_bits", "narrow"]
