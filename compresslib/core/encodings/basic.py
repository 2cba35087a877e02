"""The basic tensor encodings of ``.clz`` files: dense, constant, bitmask (plain and deflated), CSR, zlib.

Each is a pair ``(encoder, decoder)``: ``encoder(array)`` returns ``(meta, arrays)`` or None where it
does not apply; ``decoder(meta, arrays, shape, dtype)`` inverts it exactly and checks what it reads.
:mod:`compresslib.core.packing` describes them and chooses among them.

Example:
    >>> import numpy as np
    >>> enc, dec = ENCODERS["bitmask"]
    >>> meta, arrays = enc(np.array([0.0, 2.0, 0.0, -0.0], dtype=np.float32))
    >>> arrays["values"].tolist(), dec(meta, arrays, (4,), np.dtype("float32")).tolist()
    ([2.0, -0.0], [0.0, 2.0, 0.0, -0.0])
"""
from __future__ import annotations

import zlib
from typing import Callable, Optional

import numpy as np

from compresslib.core.encodings.common import (MAX_EXPANDED_ELEMENTS, Decoder, Encoded, check_dtype, n_elements,
                                               part, same_bits)


def _encode_dense(array: np.ndarray) -> Encoded:
    return {"encoding": "dense"}, {"values": np.ascontiguousarray(array)}


def _decode_dense(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    values = part(arrays, "values", meta)
    if values.size != n_elements(shape):
        raise ValueError(f"dense tensor of shape {list(shape)} needs {n_elements(shape)} values, "
                         f"the file has {values.size}")
    return values


def _encode_constant(array: np.ndarray) -> Optional[Encoded]:
    if array.size < 2:
        return None
    flat = np.ascontiguousarray(array).reshape(-1)
    if not same_bits(flat, np.broadcast_to(flat[:1], flat.shape)):
        return None
    return {"encoding": "constant"}, {"value": flat[:1].copy()}


def _decode_constant(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    value = part(arrays, "value", meta)
    if value.size != 1:
        raise ValueError(f"constant tensor needs exactly one stored value, the file has {value.size}")
    return np.full(shape, value.reshape(-1)[0].astype(dtype), dtype=dtype)


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


def _fill_from_mask(mask: np.ndarray, values: np.ndarray, shape: tuple, dtype: np.dtype) -> np.ndarray:
    size = n_elements(shape)
    if mask.dtype != np.uint8 or mask.size != (size + 7) // 8:
        raise ValueError(f"bitmask of a tensor with {size} elements needs {(size + 7) // 8} uint8 bytes, "
                         f"the file has {mask.size} of {mask.dtype}")
    nonzero = np.unpackbits(mask, count=size).astype(bool)
    if int(nonzero.sum()) != values.size:
        raise ValueError(f"bitmask marks {int(nonzero.sum())} non-zeros, the file has {values.size} values")
    out = np.zeros(size, dtype=dtype)
    out[nonzero] = values
    return out


def _decode_bitmask(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    return _fill_from_mask(part(arrays, "mask", meta), part(arrays, "values", meta).reshape(-1), shape, dtype)


def _encode_bitmask_z(array: np.ndarray) -> Optional[Encoded]:
    got = _flat_nonzero(array)
    if got is None or array.size > MAX_EXPANDED_ELEMENTS:
        return None
    flat, nonzero = got
    packed = np.frombuffer(zlib.compress(np.packbits(nonzero).tobytes(), 9), dtype=np.uint8)
    return {"encoding": "bitmask_z"}, {"zmask": packed, "values": flat[nonzero]}


def _decode_bitmask_z(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    need = (n_elements(shape) + 7) // 8
    try:  # never inflate more than the mask can need (a corrupt stream cannot blow up)
        d = zlib.decompressobj()
        raw = d.decompress(part(arrays, "zmask", meta).tobytes(), need + 1)
    except zlib.error as exc:
        raise ValueError(f"compressed bitmask is corrupt: {exc}") from None
    mask = np.frombuffer(raw, dtype=np.uint8)
    return _fill_from_mask(mask, part(arrays, "values", meta).reshape(-1), shape, dtype)


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


def _decode_csr(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    if not shape:
        raise ValueError("csr needs a tensor with at least one dimension")
    rows = shape[0]
    cols = n_elements(shape[1:])
    indptr, indices = part(arrays, "indptr", meta).reshape(-1), part(arrays, "indices", meta).reshape(-1)
    values = part(arrays, "values", meta).reshape(-1)
    if indptr.dtype.kind not in "iu" or indices.dtype.kind not in "iu":
        raise ValueError("csr row pointers and column indices must be integers")
    indptr = indptr.astype(np.int64)
    if (indptr.size != rows + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0)
            or indptr[-1] != indices.size or indices.size != values.size):
        raise ValueError(f"csr arrays do not fit a ({rows}, {cols}) matrix: {indptr.size} row pointers, "
                         f"{indices.size} indices, {values.size} values")
    if indices.size and (indices.min() < 0 or indices.max() >= cols):
        raise ValueError(f"csr column index outside 0..{cols - 1}")
    starts = np.zeros(indices.size, dtype=bool)  # the first entry of each non-empty row
    starts[indptr[:-1][np.diff(indptr) > 0]] = True
    if indices.size > 1 and np.any((np.diff(indices.astype(np.int64)) <= 0) & ~starts[1:]):
        raise ValueError("csr column indices must increase within each row (an element stored twice)")
    out = np.zeros((rows, cols), dtype=dtype)
    row_of = np.repeat(np.arange(rows), np.diff(indptr))
    out[row_of, indices.astype(np.int64)] = values
    return out


def _encode_zlib(array: np.ndarray) -> Optional[Encoded]:
    if array.dtype.kind not in "iub" or array.size == 0 or array.size > MAX_EXPANDED_ELEMENTS:
        return None
    raw = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
    packed = np.frombuffer(zlib.compress(raw, 6), dtype=np.uint8)
    return {"encoding": "zlib", "stored": array.dtype.name}, {"zbytes": packed}


def _decode_zlib(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    stored = check_dtype(meta.get("stored"), "zlib stored dtype").newbyteorder("<")
    if not np.can_cast(stored, dtype, "safe"):
        raise ValueError(f"stored {stored.name} values cannot be {dtype} without loss")
    need = n_elements(shape) * stored.itemsize
    try:  # never inflate more than the tensor needs
        raw = zlib.decompressobj().decompress(part(arrays, "zbytes", meta).tobytes(), need + 1)
    except zlib.error as exc:
        raise ValueError(f"deflated values are corrupt: {exc}") from None
    if len(raw) != need:
        raise ValueError(f"deflated values hold {len(raw)} bytes, a tensor of shape {list(shape)} needs {need}")
    return np.frombuffer(raw, dtype=stored).reshape(shape)


# name -> (encoder returning None when it does not apply, decoder(meta, arrays, shape, dtype))
ENCODERS: dict[str, tuple[Callable[[np.ndarray], Optional[Encoded]], Decoder]] = {
    "dense": (_encode_dense, _decode_dense),
    "constant": (_encode_constant, _decode_constant),
    "bitmask": (_encode_bitmask, _decode_bitmask),
    "bitmask_z": (_encode_bitmask_z, _decode_bitmask_z),
    "csr": (_encode_csr, _decode_csr),
    "zlib": (_encode_zlib, _decode_zlib),
}
# encodings whose decoded size is not bounded by the stored bytes (MAX_EXPANDED_ELEMENTS applies)
EXPANDING = ("constant", "bitmask_z", "csr", "zlib")

__all__ = ["ENCODERS", "EXPANDING"]
