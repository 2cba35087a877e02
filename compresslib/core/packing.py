"""Tensor encodings for ``.clz`` files: how one array is stored (the encodings: :mod:`compresslib.core.encodings`).

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
from typing import Callable, Iterator, Optional

import numpy as np

from compresslib.core.encodings import basic, entropy
from compresslib.core.encodings.common import (DTYPES, MAX_EXPANDED_ELEMENTS, MAX_NDIM, Decoder, Encoded,  # noqa: F401
                                               check_dtype, check_shape, n_elements, narrow, short)

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


# name -> (encoder returning None when it does not apply, decoder(meta, arrays, shape, dtype)): the basic
# encodings, then the codebook ones (weight sharing: codebook + indices, relative index gaps, ANS)
ENCODERS: dict[str, tuple[Callable[[np.ndarray], Optional[Encoded]], Decoder]] = {**basic.ENCODERS, **entropy.ENCODERS}
_EXPANDING = basic.EXPANDING + entropy.EXPANDING


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
        raise ValueError(f"unknown encoding {short(name)} in file; known: {tuple(ENCODERS)}")
    dtype = check_dtype(meta.get("dtype"), "tensor dtype")
    shape = check_shape(meta.get("shape"), "tensor shape")
    size = n_elements(shape)
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



# --------------------------------------------------------------------------- weight-only codes (GPTQ, AWQ)
CODE_BITS = (2, 3, 4, 8)


def code_bytes(n: int, bits: int) -> int:
    """Bytes that ``n`` signed ``bits``-bit codes take packed (what :func:`pack_codes` returns).

    Example:
        >>> code_bytes(128, 4), code_bytes(128, 3), code_bytes(128, 8)
        (64, 48, 128)
    """
    return n if bits == 8 else (n + 1) // 2 if bits == 4 else (n * bits + 7) // 8


def pack_codes(q: np.ndarray, bits: int) -> np.ndarray:
    """Signed ``bits``-bit codes (any shape, C order) packed as torch's ``WeightOnlyLinear.packed`` holds them:
    int8 for 8 bits, two codes per byte (low nibble first) for 4, a little-endian bit stream for 2 and 3.

    Example:
        >>> q = np.array([-8, 7, 0, -1, 3], np.int8)
        >>> unpack_codes(pack_codes(q, 4), 5, 4).tolist(), pack_codes(q, 4).size
        ([-8, 7, 0, -1, 3], 3)
    """
    from compresslib.core import quant

    if bits not in CODE_BITS:
        raise ValueError(f"bits must be one of {CODE_BITS}, got {bits!r}")
    q = np.asarray(q).reshape(-1)
    return q.astype(np.int8) if bits == 8 else quant.pack_int4(q) if bits == 4 else quant.pack_bits(q, bits)


def unpack_codes(packed: np.ndarray, n: int, bits: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: the first ``n`` codes as int8 (``ValueError`` if ``packed`` is too short)."""
    from compresslib.core import quant

    if bits not in CODE_BITS:
        raise ValueError(f"bits must be one of {CODE_BITS}, got {bits!r}")
    packed = np.asarray(packed).reshape(-1)
    if packed.size != code_bytes(n, bits):
        raise ValueError(f"{n} codes of {bits} bits take {code_bytes(n, bits)} bytes, got {packed.size}")
    if bits == 8:
        return packed.astype(np.int8)
    return quant.unpack_int4(packed, n) if bits == 4 else quant.unpack_bits(packed, n, bits)
