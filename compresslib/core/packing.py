"""Tensor encodings for ``.clz`` files: how one array is stored.

``encode(array)`` returns ``(meta, arrays)``: a JSON-able dict that says how to
decode, and the named arrays to store. ``decode(meta, arrays)`` inverts it
exactly: same values bit for bit, same dtype, same shape. ``encode`` first
narrows the array losslessly, then picks the encoding that stores the fewest
bytes.

Narrowing (any encoding; ``meta["dtype"]`` keeps the original dtype and
``decode`` casts back):

* integers are stored in the narrowest integer dtype that holds their minimum
  and maximum (an int64 zero point of 0 becomes one int8 byte);
* floats are stored as float16 or float32 when every value survives the round
  trip through the narrower type bit for bit (NaN payloads, infinities and
  ``-0.0`` included); otherwise they keep their dtype.

Encodings:

* ``dense``: the array as it is;
* ``constant``: all elements equal (bit for bit): one value, the shape is in ``meta``;
* ``bitmask``: one bit per element (``np.packbits``) plus the non-zero values;
  pays for fp32 from about 3 % zeros (``n/8 + 4·nnz < 4n``);
* ``bitmask_z``: the same bitmask, deflated with zlib (an entropy-coding
  step in the spirit of Han et al. 2016, "Deep Compression"), plus the values;
* ``csr``: compressed sparse rows over ``(shape[0], rest)`` with int32 column
  indices and row pointers; pays for fp32 only above 50 % zeros
  (``4·nnz + 4·nnz + 4(rows+1) < 4n``);
* ``zlib``: integer and boolean arrays (quantized weights, byte buffers such as a
  LiteRT flatbuffer) deflated with zlib, when that is smaller: int8 weights are far
  from uniform, so entropy coding saves a few per cent of them, and much of a
  flatbuffer's structure.

Only floating-point arrays get sparse encodings, and only integer and boolean
arrays get ``zlib``. Every encoding is exact.
``decode`` checks what it is given (a corrupt file gives a ``ValueError``).

Example:
    >>> import numpy as np
    >>> meta, arrays = encode(np.linspace(0.1, 0.6, 6, dtype=np.float32).reshape(2, 3))
    >>> meta["encoding"], decode(meta, arrays).shape
    ('dense', (2, 3))
    >>> w = np.zeros((100, 100), dtype=np.float32); w[::10, ::2] = 1.0   # 95 % zeros
    >>> meta, arrays = encode(w, "bitmask_z")
    >>> meta["encoding"], bool((decode(meta, arrays) == w).all())
    ('bitmask_z', True)
    >>> meta, arrays = encode(np.array([0, 3, -7, 100], dtype=np.int64))  # narrowed to int8
    >>> arrays["values"].dtype, decode(meta, arrays).dtype
    (dtype('int8'), dtype('int64'))
    >>> meta, arrays = encode(np.zeros(16, dtype=np.int64))
    >>> meta["encoding"], arrays["value"].tolist()
    ('constant', [0])
"""
from __future__ import annotations

import contextlib
import contextvars
import zlib
from typing import Callable, Iterator, Optional

import numpy as np

Encoded = tuple[dict, dict[str, np.ndarray]]

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
        raise ValueError(f"{what} must be a list of non-negative integers, got {_short(shape)}")
    if len(shape) > MAX_NDIM:
        raise ValueError(f"{what} has {len(shape)} dimensions; at most {MAX_NDIM} are allowed")
    return tuple(shape)


def _short(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (error messages about a corrupt file stay readable)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _size(shape: tuple[int, ...]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# --------------------------------------------------------------------------- narrowing
_INT_CANDIDATES = (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64)
_UINT_CANDIDATES = (np.uint8, np.uint16, np.uint32)
_FLOAT_CANDIDATES = (np.float16, np.float32)
_BITS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    if a.dtype.kind == "c":
        return _same_bits(a.real, b.real) and _same_bits(a.imag, b.imag)
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
            if _same_bits(back, array):
                return small
        return array
    return array


# --------------------------------------------------------------------------- encodings
def _part(arrays: dict, name: str, meta: dict) -> np.ndarray:
    if name not in arrays:
        raise ValueError(f"encoding {meta.get('encoding')!r} needs a stored array {name!r}; got {sorted(arrays)}")
    return np.asarray(arrays[name])


def _encode_dense(array: np.ndarray) -> Encoded:
    return {"encoding": "dense"}, {"values": np.ascontiguousarray(array)}


def _decode_dense(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    values = _part(arrays, "values", meta)
    if values.size != _size(shape):
        raise ValueError(f"dense tensor of shape {list(shape)} needs {_size(shape)} values, the file has {values.size}")
    return values


def _encode_constant(array: np.ndarray) -> Optional[Encoded]:
    if array.size < 2:
        return None
    flat = np.ascontiguousarray(array).reshape(-1)
    if not _same_bits(flat, np.broadcast_to(flat[:1], flat.shape)):
        return None
    return {"encoding": "constant"}, {"value": flat[:1].copy()}


def _decode_constant(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    value = _part(arrays, "value", meta)
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
    size = _size(shape)
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
    return _fill_from_mask(_part(arrays, "mask", meta), _part(arrays, "values", meta).reshape(-1), shape, dtype)


def _encode_bitmask_z(array: np.ndarray) -> Optional[Encoded]:
    got = _flat_nonzero(array)
    if got is None or array.size > MAX_EXPANDED_ELEMENTS:
        return None
    flat, nonzero = got
    packed = np.frombuffer(zlib.compress(np.packbits(nonzero).tobytes(), 9), dtype=np.uint8)
    return {"encoding": "bitmask_z"}, {"zmask": packed, "values": flat[nonzero]}


def _decode_bitmask_z(meta: dict, arrays: dict[str, np.ndarray], shape: tuple, dtype: np.dtype) -> np.ndarray:
    need = (_size(shape) + 7) // 8
    try:  # never inflate more than the mask can need (a corrupt stream cannot blow up)
        d = zlib.decompressobj()
        raw = d.decompress(_part(arrays, "zmask", meta).tobytes(), need + 1)
    except zlib.error as exc:
        raise ValueError(f"compressed bitmask is corrupt: {exc}") from None
    mask = np.frombuffer(raw, dtype=np.uint8)
    return _fill_from_mask(mask, _part(arrays, "values", meta).reshape(-1), shape, dtype)


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
    cols = _size(shape[1:])
    indptr, indices = _part(arrays, "indptr", meta).reshape(-1), _part(arrays, "indices", meta).reshape(-1)
    values = _part(arrays, "values", meta).reshape(-1)
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
    need = _size(shape) * stored.itemsize
    try:  # never inflate more than the tensor needs
        raw = zlib.decompressobj().decompress(_part(arrays, "zbytes", meta).tobytes(), need + 1)
    except zlib.error as exc:
        raise ValueError(f"deflated values are corrupt: {exc}") from None
    if len(raw) != need:
        raise ValueError(f"deflated values hold {len(raw)} bytes, a tensor of shape {list(shape)} needs {need}")
    return np.frombuffer(raw, dtype=stored).reshape(shape)


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

    ``itemsize`` is the bytes per stored value (after narrowing: 4 for fp32 weights).

    Example:
        >>> round(break_even_sparsity("bitmask"), 4), break_even_sparsity("csr")
        (0.0312, 0.5)
    """
    if encoding == "bitmask":
        return 1.0 / (8 * itemsize)  # n/8 + s'·n·b < n·b  ⇔  zeros fraction > 1/(8b)
    if encoding == "csr":
        return index_bytes / (itemsize + index_bytes)
    raise ValueError(f"encoding must be 'bitmask' or 'csr', got {encoding!r}")


Decoder = Callable[[dict, dict, tuple, np.dtype], np.ndarray]

# name -> (encoder returning None when it does not apply, decoder(meta, arrays, shape, dtype))
ENCODERS: dict[str, tuple[Callable[[np.ndarray], Optional[Encoded]], Decoder]] = {
    "dense": (_encode_dense, _decode_dense),
    "constant": (_encode_constant, _decode_constant),
    "bitmask": (_encode_bitmask, _decode_bitmask),
    "bitmask_z": (_encode_bitmask_z, _decode_bitmask_z),
    "csr": (_encode_csr, _decode_csr),
    "zlib": (_encode_zlib, _decode_zlib),
}
_EXPANDING = ("constant", "bitmask_z", "csr", "zlib")


def stored_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the raw array data (headers not counted)."""
    return int(sum(a.nbytes for a in arrays.values()))


# What one more stored array costs in a .clz file besides its data: its entry in the
# (deflated) manifest and up to 7 bytes of padding to the next 8-byte boundary.
ARRAY_OVERHEAD = 24


def encoded_cost(arrays: dict[str, np.ndarray]) -> int:
    """Bytes an encoding adds to a file: array data plus :data:`ARRAY_OVERHEAD` per array."""
    return stored_bytes(arrays) + ARRAY_OVERHEAD * len(arrays)


def encode(array: np.ndarray, encoding: Optional[str] = None) -> Encoded:
    """Encode ``array`` with ``encoding``, or with whichever encoding is smallest when None.

    The array is narrowed first (:func:`narrow`); ``meta["dtype"]`` is its original dtype.
    """
    array = np.asarray(array)
    check_dtype(array.dtype.name, "array dtype")
    stored = narrow(array)
    if encoding is not None:
        if encoding not in ENCODERS:
            raise ValueError(f"encoding must be one of {tuple(ENCODERS)}, got {encoding!r}")
        out = ENCODERS[encoding][0](stored)
        if out is None:
            raise ValueError(f"encoding {encoding!r} does not apply to an array of dtype {array.dtype}"
                             f" and shape {array.shape}")
        candidates = [out]
    else:
        excluded = _EXCLUDED.get()
        candidates = [c for c in (enc(stored) for name, (enc, _) in ENCODERS.items() if name not in excluded)
                      if c is not None]
    meta, arrays = min(candidates, key=lambda c: encoded_cost(c[1]))
    meta = dict(meta, shape=list(array.shape), dtype=str(array.dtype))
    return meta, arrays


def decoded_nbytes(meta: dict) -> int:
    """Bytes the tensor that ``meta`` describes will take once decoded, after checking ``meta``.

    Checks the encoding name, the dtype and the shape (and the size limit of encodings
    that expand), without touching any stored array: a loader calls it for every tensor
    of a file before it allocates anything.

    Example:
        >>> decoded_nbytes({"encoding": "constant", "dtype": "float32", "shape": [3, 4]})
        48
        >>> decoded_nbytes({"encoding": "constant", "dtype": "float32", "shape": [2 ** 40]})
        Traceback (most recent call last):
        ...
        ValueError: tensor shape [1099511627776] is too large for encoding 'constant'
    """
    if not isinstance(meta, dict):
        raise ValueError(f"tensor description must be a dict, got {type(meta).__name__}")
    name = meta.get("encoding")
    if not isinstance(name, str) or name not in ENCODERS:
        raise ValueError(f"unknown encoding {_short(name)} in file; known: {tuple(ENCODERS)}")
    dtype = check_dtype(meta.get("dtype"), "tensor dtype")
    shape = check_shape(meta.get("shape"), "tensor shape")
    size = _size(shape)
    if name in _EXPANDING and size > MAX_EXPANDED_ELEMENTS:
        raise ValueError(f"tensor shape {list(shape)} is too large for encoding {name!r}")
    return size * dtype.itemsize


def decode(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Invert :func:`encode`; a ``meta`` or ``arrays`` that does not fit gives a ``ValueError``."""
    decoded_nbytes(meta)
    name = meta["encoding"]
    dtype = np.dtype(meta["dtype"])
    shape = tuple(meta["shape"])
    for part, values in arrays.items():
        values = np.asarray(values)
        check_dtype(values.dtype.name, f"stored array {part!r} dtype")
        if part in ("values", "value") and not np.can_cast(values.dtype, dtype, "safe"):
            raise ValueError(f"stored {values.dtype} values cannot be {dtype} without loss")
    out = ENCODERS[name][1](meta, arrays, shape, dtype)
    return np.asarray(out, dtype=dtype).reshape(shape)


# --------------------------------------------------------------------------- plug-ins and the chooser
_EXCLUDED: contextvars.ContextVar[frozenset] = contextvars.ContextVar("excluded_encodings", default=frozenset())


def register(encoders: dict, expanding: bool = True) -> None:
    """Add encodings ``{name: (encoder, decoder)}`` to :data:`ENCODERS` (``expanding``: their decoded
    size is not bounded by the stored bytes, so :data:`MAX_EXPANDED_ELEMENTS` applies)."""
    global _EXPANDING
    ENCODERS.update(encoders)
    if expanding:
        _EXPANDING = tuple(dict.fromkeys(_EXPANDING + tuple(encoders)))


@contextlib.contextmanager
def excluding(*names: str) -> Iterator[None]:
    """Within this block, :func:`encode`'s automatic choice skips the encodings ``names``.

    Used to measure what a file would weigh without entropy coding (the stages of
    Deep Compression). Decoding is never affected.

    Example:
        >>> w = np.zeros((100, 100), dtype=np.float32); w[::10, ::2] = 1.0
        >>> encode(w)[0]["encoding"]
        'codebook_ans'
        >>> with excluding("bitmask_z", "codebook_ans"):
        ...     encode(w)[0]["encoding"]
        'codebook'
    """
    unknown = [n for n in names if n not in ENCODERS or n == "dense"]
    if unknown:
        raise ValueError(f"names: cannot exclude {unknown}; encodings are {tuple(ENCODERS)} (dense always stays)")
    token = _EXCLUDED.set(_EXCLUDED.get() | frozenset(names))
    try:
        yield
    finally:
        _EXCLUDED.reset(token)


# Codebook encodings (weight sharing: codebook + indices, relative index gaps, ANS) register here.
from compresslib.core import entropy as _entropy  # noqa: E402,F401  (circular by design: registers on import)
