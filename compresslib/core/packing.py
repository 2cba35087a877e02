"""Tensor encodings for ``.clz`` files: how one array is stored.

``encode(array)`` returns ``(meta, arrays)``: a JSON-able dict that says how to
decode, and the named arrays to store. ``decode(meta, arrays)`` inverts it
exactly. ``encode`` picks the encoding that stores the fewest bytes:

* ``dense``: the array as it is;
* ``bitmask``: one bit per element (``np.packbits``) plus the non-zero values;
  pays for fp32 from about 3 % zeros (``n/8 + 4·nnz < 4n``);
* ``bitmask_z``: the same bitmask, deflated with zlib (an entropy-coding
  step in the spirit of Han et al. 2016, "Deep Compression"), plus the values;
* ``csr``: compressed sparse rows over ``(shape[0], rest)`` with int32 column
  indices and row pointers; pays for fp32 only above 50 % zeros
  (``4·nnz + 4·nnz + 4(rows+1) < 4n``).

Only floating-point arrays get sparse encodings. Every encoding is exact.

Example:
    >>> import numpy as np
    >>> meta, arrays = encode(np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    >>> meta["encoding"], decode(meta, arrays).shape
    ('dense', (2, 3))
    >>> w = np.zeros((100, 100), dtype=np.float32); w[::10, ::2] = 1.0   # 95 % zeros
    >>> meta, arrays = encode(w)
    >>> meta["encoding"], bool((decode(meta, arrays) == w).all())
    ('bitmask_z', True)
"""
from __future__ import annotations

import zlib
from typing import Callable, Optional

import numpy as np

Encoded = tuple[dict, dict[str, np.ndarray]]


def _encode_dense(array: np.ndarray) -> Encoded:
    return {"encoding": "dense"}, {"values": np.ascontiguousarray(array)}


def _decode_dense(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    return arrays["values"]


def _flat_nonzero(array: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray]]:
    if array.dtype.kind != "f" or array.size == 0:
        return None
    flat = np.ascontiguousarray(array).reshape(-1)
    # a -0.0 is stored as a value so the round trip is bit-exact
    nonzero = (flat != 0) | np.signbit(flat)  # non-zeros, and the negative zeros (signbit of a zero)
    return flat, nonzero


def _encode_bitmask(array: np.ndarray) -> Optional[Encoded]:
    got = _flat_nonzero(array)
    if got is None:
        return None
    flat, nonzero = got
    return {"encoding": "bitmask"}, {"mask": np.packbits(nonzero), "values": flat[nonzero]}


def _decode_bitmask(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    size = int(np.prod(meta["shape"], dtype=np.int64))
    nonzero = np.unpackbits(arrays["mask"], count=size).astype(bool)
    out = np.zeros(size, dtype=np.dtype(meta["dtype"]))
    out[nonzero] = arrays["values"]
    return out


def _encode_bitmask_z(array: np.ndarray) -> Optional[Encoded]:
    got = _flat_nonzero(array)
    if got is None:
        return None
    flat, nonzero = got
    packed = np.frombuffer(zlib.compress(np.packbits(nonzero).tobytes(), 9), dtype=np.uint8)
    return {"encoding": "bitmask_z"}, {"zmask": packed, "values": flat[nonzero]}


def _decode_bitmask_z(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    mask = np.frombuffer(zlib.decompress(arrays["zmask"].tobytes()), dtype=np.uint8)
    return _decode_bitmask(meta, {"mask": mask, "values": arrays["values"]})


def _encode_csr(array: np.ndarray) -> Optional[Encoded]:
    got = _flat_nonzero(array)
    if got is None or array.ndim == 0:
        return None
    flat, nonzero = got
    rows = array.shape[0]
    cols = array.size // rows if rows else 0
    if cols >= 2 ** 31 or array.size >= 2 ** 31:
        return None
    nz2 = nonzero.reshape(rows, cols)
    indptr = np.zeros(rows + 1, dtype=np.int32)
    np.cumsum(nz2.sum(1), out=indptr[1:])
    indices = np.nonzero(nz2)[1].astype(np.int32)
    return {"encoding": "csr"}, {"indptr": indptr, "indices": indices, "values": flat[nonzero]}


def _decode_csr(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    shape = meta["shape"]
    rows = shape[0]
    cols = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
    out = np.zeros((rows, cols), dtype=np.dtype(meta["dtype"]))
    indptr = arrays["indptr"].astype(np.int64)
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    out[row_of, arrays["indices"]] = arrays["values"]
    return out


# --------------------------------------------------------------------------- break-even
def dense_bytes(size: int, itemsize: int = 4) -> int:
    """Bytes of a dense array of ``size`` elements."""
    return size * itemsize


def bitmask_bytes(size: int, nnz: int, itemsize: int = 4) -> int:
    """Bytes of the bitmask encoding: one bit per element plus the non-zero values."""
    return (size + 7) // 8 + nnz * itemsize


def csr_bytes(rows: int, nnz: int, itemsize: int = 4, index_bytes: int = 4) -> int:
    """Bytes of the CSR encoding: values, column indices and ``rows + 1`` row pointers."""
    return nnz * (itemsize + index_bytes) + (rows + 1) * index_bytes


def break_even_sparsity(encoding: str, itemsize: int = 4, index_bytes: int = 4) -> float:
    """Sparsity above which ``encoding`` ("bitmask" or "csr") stores fewer bytes than dense (large arrays).

    Example:
        >>> round(break_even_sparsity("bitmask"), 4), break_even_sparsity("csr")
        (0.0312, 0.5)
    """
    if encoding == "bitmask":
        return 1.0 / (8 * itemsize)  # n/8 + s'·n·b < n·b  ⇔  zeros fraction > 1/(8b)
    if encoding == "csr":
        return index_bytes / (itemsize + index_bytes)
    raise ValueError(f"encoding must be 'bitmask' or 'csr', got {encoding!r}")


# name -> (encoder returning None when it does not apply, decoder)
ENCODERS: dict[str, tuple[Callable[[np.ndarray], Optional[Encoded]], Callable[[dict, dict], np.ndarray]]] = {
    "dense": (_encode_dense, _decode_dense),
    "bitmask": (_encode_bitmask, _decode_bitmask),
    "bitmask_z": (_encode_bitmask_z, _decode_bitmask_z),
    "csr": (_encode_csr, _decode_csr),
}


def stored_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the raw array data (headers not counted)."""
    return int(sum(a.nbytes for a in arrays.values()))


# What one more stored array costs in a .clz file besides its data: a .npy header
# (128 bytes) and the zip local + central directory entries (about 100 bytes).
ARRAY_OVERHEAD = 228


def encoded_cost(arrays: dict[str, np.ndarray]) -> int:
    """Bytes an encoding adds to a file: array data plus :data:`ARRAY_OVERHEAD` per array."""
    return stored_bytes(arrays) + ARRAY_OVERHEAD * len(arrays)


def encode(array: np.ndarray, encoding: Optional[str] = None) -> Encoded:
    """Encode ``array`` with ``encoding``, or with whichever encoding is smallest when None."""
    array = np.asarray(array)
    if encoding is not None:
        if encoding not in ENCODERS:
            raise ValueError(f"encoding must be one of {tuple(ENCODERS)}, got {encoding!r}")
        out = ENCODERS[encoding][0](array)
        if out is None:
            raise ValueError(f"encoding {encoding!r} does not apply to an array of dtype {array.dtype}")
        candidates = [out]
    else:
        candidates = [c for c in (enc(array) for enc, _ in ENCODERS.values()) if c is not None]
    meta, arrays = min(candidates, key=lambda c: encoded_cost(c[1]))
    meta = dict(meta, shape=list(array.shape), dtype=str(array.dtype))
    return meta, arrays


def decode(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Invert :func:`encode`."""
    name = meta.get("encoding")
    if name not in ENCODERS:
        raise ValueError(f"unknown encoding {name!r} in file; known: {tuple(ENCODERS)}")
    out = ENCODERS[name][1](meta, arrays)
    return np.asarray(out, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"])
