"""Codebook encodings for ``.clz`` files: shared weights as a codebook plus indices, entropy-coded.

A tensor with at most 256 distinct non-zero values (what weight sharing,
:mod:`compresslib.core.sharing`, leaves) is stored as the codebook of those
values, one index per non-zero, and where the non-zeros sit. Two encodings,
offered to ``compresslib.core.packing`` (whose chooser keeps the smallest
encoding of each tensor):

* ``codebook``: the indices at ``b = ceil(log2 k)`` bits each, and the
  positions as a bitmask (one bit per element) or as **relative index gaps**
  of ``g`` bits (Han et al. 2016: the distance to the previous non-zero; a
  distance above ``2**g`` is bridged by *filler zeros*, entries of value 0),
  whichever is smaller, with ``g`` in 1..8 chosen per tensor;
* ``codebook_ans``: the same streams (indices, and gaps or a bitmask),
  entropy-coded. The coder is **asymmetric numeral systems** from the
  ``constriction`` library (Bamler 2022; Rust, MIT/Apache-2.0) with one
  categorical model per stream built from the stored symbol counts. It was
  chosen over Huffman coding by measurement (``bench/deep_compression.py``
  prints both): ANS reaches the entropy within a few bytes per tensor where
  Huffman loses up to a bit per symbol on skewed streams, and constriction
  decodes hundreds of thousands of symbols in milliseconds, where a Huffman
  decoder written in Python walks symbol by symbol. The textbook Huffman code
  (:func:`huffman_code_lengths`, :func:`huffman_encode`, :func:`huffman_decode`)
  stays here as the reference the chapter compares against.

Both are exact: decoding gives the same values bit for bit. The decoder
treats the file as untrusted: the codebook holds at most 256 entries, every
count is checked against the tensor's shape before anything is allocated,
positions must fall inside the tensor, indices inside the codebook, and the
decoded symbols of an ANS stream must match the stored counts exactly (a
flipped bit almost surely breaks that); any mismatch is a ``ValueError``.

Example:
    >>> import numpy as np
    >>> from compresslib.core import packing
    >>> rng = np.random.default_rng(0)
    >>> w = rng.choice(np.float32([-0.5, 0.25, 1.0]), size=(200, 100))
    >>> w[rng.random(w.shape) < 0.9] = 0                      # pruned to ~90 %
    >>> meta, parts = packing.encode(w)
    >>> meta["encoding"], meta["k"], bool((packing.decode(meta, parts) == w).all())
    ('codebook_ans', 3, True)
    >>> packing.stored_bytes(parts) < w.size // 8             # under one bit per weight
    True
"""
from __future__ import annotations

import heapq
from typing import Optional

import numpy as np

from compresslib.core.encodings.common import MAX_EXPANDED_ELEMENTS, Encoded, n_elements, narrow, part

MAX_CODEBOOK = 256
MAX_GAP_BITS = 8
POSITIONS = ("none", "bitmask", "gaps")


# --------------------------------------------------------------------------- entropy, Huffman (reference)
def entropy_bits(counts: np.ndarray) -> float:
    """Shannon's bound: the fewest bits any code spends on symbols with these counts.

    Example:
        >>> entropy_bits(np.array([2, 1, 1]))
        6.0
    """
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    if c.size == 0:
        return 0.0
    return float(-(c * np.log2(c / c.sum())).sum())


def huffman_code_lengths(counts: np.ndarray) -> np.ndarray:
    """Huffman's code length of every symbol (0 for symbols that never occur).

    A lone symbol gets length 1. Ties are broken by symbol order, so the lengths are deterministic.

    Example:
        >>> huffman_code_lengths(np.array([5, 2, 1, 1])).tolist()
        [1, 2, 3, 3]
    """
    counts = np.asarray(counts)
    lengths = np.zeros(counts.size, dtype=np.int64)
    used = [int(i) for i in np.flatnonzero(counts > 0)]
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    heap = [(int(counts[i]), i, [i]) for i in used]
    heapq.heapify(heap)
    while len(heap) > 1:
        c1, t1, s1 = heapq.heappop(heap)
        c2, t2, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (c1 + c2, min(t1, t2), s1 + s2))
    return lengths


def _canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical Huffman codes (as integers) for the given lengths (0 = unused symbol)."""
    codes = np.zeros(lengths.size, dtype=np.int64)
    code, prev = 0, 0
    for sym in sorted(np.flatnonzero(lengths), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev
        codes[sym], prev = code, int(lengths[sym])
        code += 1
    return codes


def huffman_encode(symbols: np.ndarray, lengths: np.ndarray) -> bytes:
    """Canonical Huffman code of ``symbols`` (vectorised bit packing), MSB first.

    Example:
        >>> lengths = huffman_code_lengths(np.array([5, 2, 1, 1]))
        >>> data = huffman_encode(np.array([0, 0, 1, 3, 2]), lengths)
        >>> huffman_decode(data, lengths, 5).tolist()
        [0, 0, 1, 3, 2]
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    codes, lens = _canonical_codes(lengths)[symbols], np.asarray(lengths)[symbols]
    width = int(lens.max()) if lens.size else 0
    shifts = np.arange(width - 1, -1, -1)
    bits = (codes[:, None] >> (shifts - (width - lens)[:, None]).clip(0)) & 1
    keep = shifts[None, :] >= (width - lens)[:, None]
    return np.packbits(bits[keep].astype(np.uint8)).tobytes()


def huffman_decode(data: bytes, lengths: np.ndarray, n: int) -> np.ndarray:
    """Decode ``n`` symbols written by :func:`huffman_encode` (a table lookup per symbol, in Python)."""
    lengths = np.asarray(lengths)
    width = int(lengths.max())
    codes = _canonical_codes(lengths)
    table_sym = np.zeros(1 << width, dtype=np.int64)
    table_len = np.zeros(1 << width, dtype=np.int64)
    for sym in np.flatnonzero(lengths):  # every width-bit window that starts with this code
        lo = int(codes[sym]) << (width - int(lengths[sym]))
        hi = lo + (1 << (width - int(lengths[sym])))
        table_sym[lo:hi], table_len[lo:hi] = sym, lengths[sym]
    bits = np.concatenate([np.unpackbits(np.frombuffer(data, dtype=np.uint8)), np.zeros(width, np.uint8)])
    windows = np.lib.stride_tricks.sliding_window_view(bits, width) @ (1 << np.arange(width - 1, -1, -1))
    out = np.empty(n, dtype=np.int64)
    pos = 0
    for i in range(n):
        w = windows[pos]
        out[i] = table_sym[w]
        pos += table_len[w]
    return out


# --------------------------------------------------------------------------- streams
def _bits_for(alphabet: int) -> int:
    """Bits of a fixed-width index into ``alphabet`` symbols (0 when there is only one)."""
    return int(alphabet - 1).bit_length()


def pack_bits(symbols: np.ndarray, bits: int) -> np.ndarray:
    """``symbols`` (each < 2**bits) as consecutive ``bits``-bit fields, MSB first, in bytes.

    Example:
        >>> pack_bits(np.array([1, 2, 3]), 2).tolist(), unpack_bits(pack_bits(np.array([1, 2, 3]), 2), 2, 3).tolist()
        ([108], [1, 2, 3])
    """
    if bits == 0 or len(symbols) == 0:
        return np.zeros(0, dtype=np.uint8)
    s = np.asarray(symbols, dtype=np.uint16)
    fields = (s[:, None] >> np.arange(bits - 1, -1, -1, dtype=np.uint16)) & 1
    return np.packbits(fields.astype(np.uint8).reshape(-1))


def unpack_bits(packed: np.ndarray, bits: int, n: int) -> np.ndarray:
    """Inverse of ``pack_bits``: ``n`` symbols of ``bits`` bits (``packed`` must hold exactly enough bytes)."""
    need = (n * bits + 7) // 8
    if packed.dtype != np.uint8 or packed.size != need:
        raise ValueError(f"{n} symbols of {bits} bits need {need} bytes, the file has {packed.size} of {packed.dtype}")
    if bits == 0:
        return np.zeros(n, dtype=np.int64)
    fields = np.unpackbits(packed, count=n * bits).reshape(n, bits).astype(np.int64)
    return fields @ (1 << np.arange(bits - 1, -1, -1, dtype=np.int64))


def gaps_with_fillers(positions: np.ndarray, values: np.ndarray, gap_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Relative index coding (Han et al. 2016): ``(gap symbols, value symbols)`` of the entries.

    ``positions`` are the sorted flat positions of the non-zeros, ``values`` their
    symbols (>= 1; 0 is the zero value). Each entry stores ``gap - 1`` in
    ``gap_bits`` bits, its distance to the previous entry; a distance above
    ``2**gap_bits`` first gets filler entries of the largest gap and value 0.

    Example:
        >>> g, v = gaps_with_fillers(np.array([1, 10]), np.array([5, 7]), 2)   # gaps 2 and 9, at most 4
        >>> g.tolist(), v.tolist()
        ([1, 3, 3, 0], [5, 0, 0, 7])
    """
    big = 1 << gap_bits
    d = np.diff(np.concatenate([[-1], np.asarray(positions, dtype=np.int64)]))
    fillers = (d - 1) // big
    ends = np.cumsum(fillers + 1) - 1
    total = int(ends[-1]) + 1 if ends.size else 0
    gaps = np.full(total, big - 1, dtype=np.int64)
    vals = np.zeros(total, dtype=np.int64)
    gaps[ends] = d - fillers * big - 1
    vals[ends] = values
    return gaps, vals


def _gap_counts(d: np.ndarray, gap_bits: int) -> tuple[np.ndarray, int]:
    """Histogram of the gap symbols for gap widths ``d`` (with fillers), and the number of fillers."""
    big = 1 << gap_bits
    fillers = (d - 1) // big
    counts = np.bincount(d - fillers * big - 1, minlength=big)
    n_fill = int(fillers.sum())
    counts[big - 1] += n_fill
    return counts, n_fill


# --------------------------------------------------------------------------- ANS (constriction)
def _constriction():
    try:
        import constriction
    except ImportError as exc:  # pragma: no cover - exercised only without the package
        raise ImportError("compresslib needs the 'constriction' package for entropy-coded (codebook_ans) "
                          "tensors: pip install constriction") from exc
    return constriction


def _model(counts: np.ndarray):
    c = _constriction()
    probs = np.asarray(counts, dtype=np.float64)
    return c.stream.model.Categorical(probs / probs.sum(), perfect=True)


def _padded_counts(symbols: np.ndarray, alphabet: int) -> np.ndarray:
    # constriction needs two symbols at least; an unused one costs nothing
    return np.bincount(symbols, minlength=max(2, alphabet)).astype(np.int64)


def ans_encode(streams: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Encode ``[(symbols, counts), ...]`` into one stack of uint32 words (decoded in the same order)."""
    c = _constriction()
    coder = c.stream.stack.AnsCoder()
    for symbols, counts in reversed(streams):  # a stack: the last encoded is decoded first
        if len(symbols):
            coder.encode_reverse(np.asarray(symbols, dtype=np.int32), _model(counts))
    return np.asarray(coder.get_compressed(), dtype=np.uint32)


def ans_decode(words: np.ndarray, counts_list: list[np.ndarray]) -> list[np.ndarray]:
    """Decode the streams of :func:`ans_encode`; each stream's length is the sum of its counts.

    Raises ``ValueError`` when the words are not a valid stream, hold more or fewer
    symbols than the counts say, or decode to symbols whose histogram is not ``counts``.
    """
    c = _constriction()
    if words.dtype != np.uint32:
        raise ValueError(f"ANS words must be uint32, the file has {words.dtype}")
    try:
        coder = c.stream.stack.AnsCoder(np.ascontiguousarray(words))
        out = []
        for counts in counts_list:
            n = int(counts.sum())
            out.append(np.asarray(coder.decode(_model(counts), n), dtype=np.int64) if n
                       else np.zeros(0, dtype=np.int64))
        empty = coder.is_empty()
    except (ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise ValueError(f"ANS stream is corrupt: {exc}") from None
    if not empty:
        raise ValueError("ANS stream is corrupt: words left over after the last symbol")
    for symbols, counts in zip(out, counts_list):
        if not np.array_equal(np.bincount(symbols, minlength=counts.size), counts):
            raise ValueError("ANS stream is corrupt: decoded symbols do not match the stored counts")
    return out


# --------------------------------------------------------------------------- the encodings
def _analyse(array: np.ndarray) -> Optional[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``(flat, nonzero mask, codebook, labels of the non-zeros)`` when the codebook encodings apply."""
    if array.dtype.kind != "f" or array.size < 2:
        return None
    flat = np.ascontiguousarray(array).reshape(-1)
    nonzero = flat != 0
    if np.signbit(flat[~nonzero]).any():  # -0.0 must come back bit for bit: leave it to the other encodings
        return None
    vals = flat[nonzero]
    if vals.size == 0 or not np.isfinite(vals).all():
        return None
    codebook, labels = np.unique(vals, return_inverse=True)
    if codebook.size > MAX_CODEBOOK:
        return None
    return flat, nonzero, codebook, labels.reshape(-1)


def _raw_plan(size: int, positions: np.ndarray, k: int) -> tuple[str, int, int]:
    """``(positions kind, gap bits, bytes)`` of the smallest fixed-width layout."""
    nnz = positions.size
    if nnz == size:
        return "none", 0, (nnz * _bits_for(k) + 7) // 8
    best = ("bitmask", 0, (size + 7) // 8 + (nnz * _bits_for(k) + 7) // 8)
    d = np.diff(np.concatenate([[-1], positions]))
    vb = _bits_for(k + 1)
    for g in range(1, MAX_GAP_BITS + 1):
        entries = nnz + int(((d - 1) >> g).sum())
        cost = (entries * g + 7) // 8 + (entries * vb + 7) // 8
        if cost < best[2]:
            best = ("gaps", g, cost)
    return best


def _ans_plan(size: int, positions: np.ndarray, labels: np.ndarray, k: int) -> tuple[str, int, float]:
    """``(positions kind, gap bits, estimated bytes)`` of the smallest entropy-coded layout."""
    nnz = positions.size
    value_counts = np.bincount(labels, minlength=k)
    values_bits = entropy_bits(value_counts)
    table = 2 * max(2, k)  # the stored counts, about two bytes each
    if nnz == size:
        return "none", 0, values_bits / 8 + table
    best = ("bitmask", 0, (entropy_bits(np.array([size - nnz, nnz])) + values_bits) / 8 + table + 4)
    d = np.diff(np.concatenate([[-1], positions]))
    for g in range(1, MAX_GAP_BITS + 1):
        gap_counts, n_fill = _gap_counts(d, g)
        cost = (entropy_bits(gap_counts) + entropy_bits(np.append(value_counts, n_fill))) / 8 \
            + 2 * (1 << g) + 2 * (k + 1)
        if cost < best[2]:
            best = ("gaps", g, cost)
    return best


def _streams(flat: np.ndarray, nonzero: np.ndarray, labels: np.ndarray, pos: str, g: int) -> list[np.ndarray]:
    """The symbol streams of a layout: ``[values]``, ``[mask bits, values]`` or ``[gaps, values (0 = zero)]``."""
    if pos == "none":
        return [labels]
    if pos == "bitmask":
        return [nonzero.astype(np.int64), labels]
    gaps, values = gaps_with_fillers(np.flatnonzero(nonzero), labels + 1, g)
    return [gaps, values]


def _encode_codebook(array: np.ndarray) -> Optional[Encoded]:
    got = _analyse(array)
    if got is None:
        return None
    flat, nonzero, codebook, labels = got
    k = codebook.size
    pos, g, _ = _raw_plan(flat.size, np.flatnonzero(nonzero), k)
    meta = {"encoding": "codebook", "k": k, "pos": pos, "g": g, "n": int(labels.size)}
    parts = {"codebook": narrow(codebook)}
    streams = _streams(flat, nonzero, labels, pos, g)
    if pos == "bitmask":
        parts["mask"] = np.packbits(nonzero)
    elif pos == "gaps":
        meta["n"] = int(streams[0].size)
        parts["gaps"] = pack_bits(streams[0], g)
    parts["idx"] = pack_bits(streams[-1], _bits_for(k + (pos == "gaps")))
    return meta, parts


def _encode_codebook_ans(array: np.ndarray) -> Optional[Encoded]:
    got = _analyse(array)
    if got is None or array.size > MAX_EXPANDED_ELEMENTS:
        return None
    flat, nonzero, codebook, labels = got
    k = codebook.size
    pos, g, _ = _ans_plan(flat.size, np.flatnonzero(nonzero), labels, k)
    streams = _streams(flat, nonzero, labels, pos, g)
    alphabets = {"none": [k], "bitmask": [2, k], "gaps": [1 << g, k + 1]}[pos]
    counts = [_padded_counts(s, a) for s, a in zip(streams, alphabets)]
    meta = {"encoding": "codebook_ans", "k": k, "pos": pos, "g": g, "a": [int(c.size) for c in counts]}
    parts = {"codebook": narrow(codebook), "counts": narrow(np.concatenate(counts)),
             "words": ans_encode(list(zip(streams, counts)))}
    return meta, parts


# --------------------------------------------------------------------------- decoding (untrusted input)
def _int_field(meta: dict, key: str, lo: int, hi: int) -> int:
    v = meta.get(key)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ValueError(f"{meta.get('encoding')} field {key!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _layout(meta: dict, size: int) -> tuple[int, str, int]:
    k = meta.get("k")
    if isinstance(k, int) and not isinstance(k, bool) and k > MAX_CODEBOOK:
        raise ValueError(f"codebook of {k} entries is larger than the {MAX_CODEBOOK} allowed")
    k = _int_field(meta, "k", 1, MAX_CODEBOOK)
    pos = meta.get("pos")
    if pos not in POSITIONS:
        raise ValueError(f"positions must be one of {POSITIONS}, got {pos!r}")
    g = _int_field(meta, "g", 1, MAX_GAP_BITS) if pos == "gaps" else 0
    return k, pos, g


def _codebook(meta: dict, arrays: dict, k: int, dtype: np.dtype) -> np.ndarray:
    cb = part(arrays, "codebook", meta).reshape(-1)
    if cb.size > MAX_CODEBOOK:
        raise ValueError(f"codebook of {cb.size} entries is larger than the {MAX_CODEBOOK} allowed")
    if cb.size != k:
        raise ValueError(f"codebook holds {cb.size} values, the tensor says {k}")
    if cb.dtype.kind != "f" or not np.can_cast(cb.dtype, dtype, "safe"):
        raise ValueError(f"codebook of dtype {cb.dtype} cannot be {dtype} without loss")
    return cb.astype(dtype)


def _assemble(streams: list[np.ndarray], cb: np.ndarray, pos: str, size: int, dtype: np.dtype) -> np.ndarray:
    """The flat tensor from decoded streams (every index and position checked first)."""
    k = cb.size
    out = np.zeros(size, dtype=dtype)
    values = streams[-1]
    if pos == "gaps":
        if values.size and values.max() > k:
            raise ValueError(f"an index points past the codebook of {k} values")
        where = np.cumsum(streams[0] + 1) - 1
        if where.size and where[-1] >= size:
            raise ValueError(f"relative indices run to position {int(where[-1])}, past the tensor's {size} elements")
        table = np.concatenate([np.zeros(1, dtype=dtype), cb])
        out[where] = table[values]
        return out
    if values.size and values.max() >= k:
        raise ValueError(f"an index points past the codebook of {k} values")
    if pos == "none":
        if values.size != size:
            raise ValueError(f"{values.size} indices for a tensor of {size} elements")
        return cb[values]
    mask = streams[0].astype(bool)
    if mask.size != size or int(mask.sum()) != values.size:
        raise ValueError(f"bitmask marks {int(mask.sum())} non-zeros of {mask.size}, the file has {values.size} indices")
    out[mask] = cb[values]
    return out


def _decode_codebook(meta: dict, arrays: dict, shape: tuple, dtype: np.dtype) -> np.ndarray:
    size = n_elements(shape)
    k, pos, g = _layout(meta, size)
    cb = _codebook(meta, arrays, k, dtype)
    n = _int_field(meta, "n", 0, size)
    if pos == "none":
        streams = [unpack_bits(part(arrays, "idx", meta), _bits_for(k), size)]
    elif pos == "bitmask":
        mask = part(arrays, "mask", meta)
        if mask.dtype != np.uint8 or mask.size != (size + 7) // 8:
            raise ValueError(f"bitmask of {size} elements needs {(size + 7) // 8} uint8 bytes, the file has "
                             f"{mask.size} of {mask.dtype}")
        bits = np.unpackbits(mask, count=size)
        streams = [bits, unpack_bits(part(arrays, "idx", meta), _bits_for(k), int(bits.sum()))]
    else:
        streams = [unpack_bits(part(arrays, "gaps", meta), g, n),
                   unpack_bits(part(arrays, "idx", meta), _bits_for(k + 1), n)]
    return _assemble(streams, cb, pos, size, dtype)


def _decode_codebook_ans(meta: dict, arrays: dict, shape: tuple, dtype: np.dtype) -> np.ndarray:
    size = n_elements(shape)
    k, pos, g = _layout(meta, size)
    cb = _codebook(meta, arrays, k, dtype)
    want = {"none": [max(2, k)], "bitmask": [2, max(2, k)], "gaps": [1 << g, k + 1]}[pos]
    if meta.get("a") != want:
        raise ValueError(f"alphabet sizes {meta.get('a')!r} do not fit a codebook of {k} with positions {pos!r}")
    counts = part(arrays, "counts", meta).reshape(-1)
    if counts.dtype.kind not in "iu" or counts.size != sum(want) or (counts.size and counts.min() < 0):
        raise ValueError(f"symbol counts must be {sum(want)} non-negative integers, the file has "
                         f"{counts.size} of {counts.dtype}")
    counts = counts.astype(np.int64)
    split = np.split(counts, np.cumsum(want)[:-1])
    # every stream's length is bounded by the tensor's size before anything is decoded
    limits = {"none": [size], "bitmask": [size, size], "gaps": [size, size]}[pos]
    for c, limit in zip(split, limits):
        if int(c.sum()) > limit:
            raise ValueError(f"symbol counts say {int(c.sum())} symbols, a tensor of {size} elements has at most {limit}")
    if pos == "gaps" and int(split[0].sum()) != int(split[1].sum()):
        raise ValueError(f"{int(split[0].sum())} relative indices but {int(split[1].sum())} values")
    if pos == "none" and int(split[0].sum()) != size:
        raise ValueError(f"{int(split[0].sum())} indices for a tensor of {size} elements")
    if pos == "bitmask" and int(split[0].sum()) != size:
        raise ValueError(f"bitmask of {int(split[0].sum())} bits for a tensor of {size} elements")
    words = part(arrays, "words", meta).reshape(-1)
    return _assemble(ans_decode(words, split), cb, pos, size, dtype)


def describe(meta: dict) -> str:
    """A short human description of a codebook encoding (for ``compresslib inspect``).

    Example:
        >>> describe({"encoding": "codebook_ans", "k": 32, "pos": "gaps", "g": 4})
        'codebook of 32 (5-bit indices), positions as 4-bit relative indices, ANS-coded'
    """
    k = meta.get("k", 0)
    pos = {"none": "no zeros", "bitmask": "positions as a bitmask",
           "gaps": f"positions as {meta.get('g')}-bit relative indices"}.get(meta.get("pos"), "?")
    coder = "ANS-coded" if meta.get("encoding") == "codebook_ans" else "fixed-width"
    return f"codebook of {k} ({_bits_for(k) if isinstance(k, int) else '?'}-bit indices), {pos}, {coder}"


# The encodings this module offers to packing's chooser (both expand: MAX_EXPANDED_ELEMENTS applies).
ENCODERS = {"codebook": (_encode_codebook, _decode_codebook),
            "codebook_ans": (_encode_codebook_ans, _decode_codebook_ans)}
ENTROPY_CODED = ("codebook_ans", "bitmask_z", "zlib")  # what ``packing.excluding`` leaves out for "uncoded" sizes
EXPANDING = tuple(ENCODERS)

__all__ = ["entropy_bits", "huffman_code_lengths", "huffman_encode", "huffman_decode", "pack_bits", "unpack_bits",
           "gaps_with_fillers", "ans_encode", "ans_decode", "describe", "MAX_CODEBOOK", "ENTROPY_CODED"]
