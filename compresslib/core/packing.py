"""Tensor encodings for ``.clz`` files: how one array is stored.

``encode(array)`` returns ``(meta, arrays)``: a JSON-able dict that says how to
decode, and the named arrays to store. ``decode(meta, arrays)`` inverts it
exactly. Encodings: ``dense`` (the array as it is). Sparse encodings may be
added to ``ENCODERS``; ``encode`` picks the one that stores the fewest bytes.

Example:
    >>> import numpy as np
    >>> meta, arrays = encode(np.arange(6, dtype=np.float32).reshape(2, 3))
    >>> meta["encoding"], decode(meta, arrays).shape
    ('dense', (2, 3))
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

Encoded = tuple[dict, dict[str, np.ndarray]]


def _encode_dense(array: np.ndarray) -> Encoded:
    return {"encoding": "dense"}, {"values": np.ascontiguousarray(array)}


def _decode_dense(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    return arrays["values"]


# name -> (encoder returning None when it does not apply, decoder)
ENCODERS: dict[str, tuple[Callable[[np.ndarray], Optional[Encoded]], Callable[[dict, dict], np.ndarray]]] = {
    "dense": (_encode_dense, _decode_dense),
}


def stored_bytes(arrays: dict[str, np.ndarray]) -> int:
    """Bytes of the raw array data (headers not counted)."""
    return int(sum(a.nbytes for a in arrays.values()))


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
    meta, arrays = min(candidates, key=lambda c: stored_bytes(c[1]))
    meta = dict(meta, shape=list(array.shape), dtype=str(array.dtype))
    return meta, arrays


def decode(meta: dict, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Invert :func:`encode`."""
    name = meta.get("encoding")
    if name not in ENCODERS:
        raise ValueError(f"unknown encoding {name!r} in file; known: {tuple(ENCODERS)}")
    out = ENCODERS[name][1](meta, arrays)
    return np.asarray(out, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"])
