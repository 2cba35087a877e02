"""Sparse tensor encodings and the break-even choice."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays as np_arrays, floating_dtypes, integer_dtypes

from compresslib.core import packing


def _sparse(rng, shape, sparsity):
    w = rng.normal(size=shape).astype(np.float32)
    w[rng.random(shape) < sparsity] = 0.0
    return w


@pytest.mark.parametrize("encoding", ["dense", "bitmask", "bitmask_z", "csr"])
@pytest.mark.parametrize("shape", [(7,), (13, 29), (4, 3, 5, 5), (1, 1)])
def test_round_trip_is_bit_exact(rng, encoding, shape):
    w = _sparse(rng, shape, 0.7)
    w.ravel()[0] = -0.0
    meta, arrays = packing.encode(w, encoding)
    out = packing.decode(meta, arrays)
    assert out.dtype == w.dtype and out.shape == w.shape
    assert out.tobytes() == w.tobytes()


def test_byte_counts_match_formulas(rng):
    w = _sparse(rng, (64, 100), 0.9)
    nnz = int(np.count_nonzero(w))
    _, bm = packing.encode(w, "bitmask")
    _, csr = packing.encode(w, "csr")
    assert packing.stored_bytes(bm) == packing.bitmask_bytes(6400, nnz) == 800 + 4 * nnz
    assert packing.stored_bytes(csr) == packing.csr_bytes(64, nnz) == 8 * nnz + 4 * 65


def test_break_even_rule():
    assert packing.break_even_sparsity("csr") == 0.5
    assert packing.break_even_sparsity("bitmask") == pytest.approx(1 / 32)
    n = 1_000_000
    assert packing.csr_bytes(1000, int(0.55 * n)) > packing.dense_bytes(n) > packing.csr_bytes(1000, int(0.45 * n))
    assert packing.bitmask_bytes(n, int(0.98 * n)) > packing.dense_bytes(n) > packing.bitmask_bytes(n, int(0.96 * n))


@pytest.mark.parametrize("sparsity, expected", [(0.0, "dense"), (0.01, "bitmask_z"), (0.5, "bitmask"),
                                                (0.9, "bitmask_z")])
def test_automatic_choice_is_the_smallest(rng, sparsity, expected):
    w = _sparse(rng, (300, 200), sparsity)
    meta, arrays = packing.encode(w)
    assert meta["encoding"] == expected
    # codebook encodings (weight sharing, core/encodings/entropy.py) do not apply to these thousands of distinct values
    costs = {e: packing.encoded_cost(packing.encode(w, e)[1]) for e in packing.ENCODERS
             if e not in ("constant", "zlib", "codebook", "codebook_ans")}
    assert packing.encoded_cost(arrays) == min(costs.values())


def test_csr_beats_plain_bitmask_when_almost_empty(rng):
    w = np.zeros((300, 1000), dtype=np.float32)
    w[rng.integers(0, 300, 30), rng.integers(0, 1000, 30)] = 1.5
    cost = {e: packing.encoded_cost(packing.encode(w, e)[1]) for e in packing.ENCODERS if e not in ("constant", "zlib")}
    assert cost["csr"] < cost["bitmask"] < cost["dense"]
    # the deflated bitmask (a run of zero bytes compresses ~1000:1) is smaller still, and is chosen among the
    # bitmask/CSR family; one distinct value makes the entropy-coded codebook (core/encodings/entropy.py) smaller again
    assert cost["bitmask_z"] < cost["csr"] and cost["codebook_ans"] < cost["bitmask_z"]
    assert packing.encode(w)[0]["encoding"] == "codebook_ans"
    with packing.excluding("codebook", "codebook_ans"):
        assert packing.encode(w)[0]["encoding"] == "bitmask_z"


def test_integer_arrays_stay_dense_or_deflated(rng):
    meta, _ = packing.encode(rng.integers(-128, 128, (100, 100)).astype(np.int8))  # uniform bytes: no gain
    assert meta["encoding"] == "dense"
    w = np.clip(np.round(rng.normal(0, 20, (100, 100))), -127, 127).astype(np.int8)  # like int8 weights
    meta, arrays = packing.encode(w)
    assert meta["encoding"] == "zlib" and packing.stored_bytes(arrays) < 0.9 * w.nbytes
    assert packing.decode(meta, arrays).tobytes() == w.tobytes()
    with pytest.raises(ValueError, match="does not apply"):
        packing.encode(np.ones(10, np.float32), "zlib")
    with pytest.raises(ValueError, match="does not apply"):
        packing.encode(np.zeros(10, dtype=np.int32), "csr")


# --------------------------------------------------------------------------- narrowing and constants
def _same(out, x):
    assert out.dtype == x.dtype and out.shape == x.shape
    assert out.tobytes() == x.tobytes()


@settings(max_examples=80, deadline=None)
@given(x=np_arrays(integer_dtypes(endianness="="), st.tuples(st.integers(0, 5), st.integers(1, 7))))
def test_integer_round_trip_is_bit_exact(x):
    meta, arrays = packing.encode(x)
    _same(packing.decode(meta, arrays), x)
    assert packing.stored_bytes(arrays) <= x.nbytes  # never wider than the original


@st.composite
def _float_arrays(draw):
    """float16/32/64 arrays mixing exact float32 values, special values and arbitrary values of the dtype."""
    dtype = draw(floating_dtypes(endianness="=", sizes=(16, 32, 64)))
    width = dtype.itemsize * 8
    special = st.sampled_from([0.0, -0.0, 1.0, 0.5, float("inf"), float("-inf"), float("nan")])
    elements = st.one_of(st.floats(width=width), st.floats(width=min(width, 32)), special)
    return draw(np_arrays(dtype, st.tuples(st.integers(0, 5), st.integers(1, 7)), elements=elements))


@settings(max_examples=80, deadline=None)
@given(x=_float_arrays())
def test_float_round_trip_is_bit_exact(x):
    for encoding in (None, "dense", "bitmask", "bitmask_z", "csr"):
        if encoding == "csr" and x.ndim == 0:
            continue
        meta, arrays = packing.encode(x, encoding) if x.size or encoding is None else packing.encode(x, "dense")
        _same(packing.decode(meta, arrays), x)


@pytest.mark.parametrize("dtype, lo, hi, expected", [
    (np.int64, 0, 0, np.int8), (np.int64, -128, 127, np.int8), (np.int64, 0, 255, np.uint8),
    (np.int64, -1, 255, np.int16), (np.int32, 0, 70000, np.int32), (np.int64, 0, 70000, np.int32), (np.int64, 0, 2 ** 32 - 1, np.uint32), (np.int64, -2 ** 40, 1, np.int64),
    (np.uint64, 0, 255, np.uint8), (np.uint64, 0, 2 ** 63, np.uint64), (np.int16, -5, 5, np.int8),
    (np.int8, -5, 5, np.int8), (np.uint16, 3, 1000, np.uint16)])
def test_integers_narrow_to_the_smallest_dtype_that_holds_them(dtype, lo, hi, expected):
    x = np.array([lo, hi, lo, hi], dtype=dtype)
    assert packing.narrow(x).dtype == np.dtype(expected)
    meta, arrays = packing.encode(x)
    _same(packing.decode(meta, arrays), x)


def test_float64_is_stored_as_float32_only_when_exact():
    exact = np.array([0.1, -2.5, np.inf, -np.inf, -0.0, np.nan, 3.0e38], dtype=np.float32).astype(np.float64)
    assert packing.narrow(exact).dtype == np.float32
    meta, arrays = packing.encode(exact)
    assert arrays["values"].dtype == np.float32 and meta["dtype"] == "float64"
    _same(packing.decode(meta, arrays), exact)
    for bad in (0.1, 1e-320, 1e300, 1 + 2 ** -30):  # not float32: float64 rounding, subnormal, overflow, mantissa
        x = exact.copy()
        x[0] = bad
        assert packing.narrow(x).dtype == np.float64
        meta, arrays = packing.encode(x)
        _same(packing.decode(meta, arrays), x)
    nan_payload = np.array([1.0, 2.0]).copy()
    nan_payload.view(np.uint64)[0] = 0x7FF0000000000001  # a signalling NaN whose payload float32 would lose
    assert packing.narrow(nan_payload).dtype == np.float64
    _same(packing.decode(*packing.encode(nan_payload)), nan_payload)


def test_constant_encoding():
    for x in (np.full((64, 3), 7, np.int64), np.full(100, -0.0, np.float64), np.full((5, 5), np.nan, np.float32),
              np.ones(10, bool), np.full(9, 0.1)):
        meta, arrays = packing.encode(x)
        assert meta["encoding"] == "constant" and packing.stored_bytes(arrays) <= x.itemsize
        _same(packing.decode(meta, arrays), x)
    # -0.0 and 0.0 are equal but not the same bits: not constant
    assert packing.encode(np.array([0.0, -0.0] * 10))[0]["encoding"] != "constant"
    assert packing.encode(np.array([3], np.int64))[0]["encoding"] == "dense"  # one element: no gain


@pytest.mark.parametrize("meta, arrays, match", [
    ({"encoding": "dense", "shape": [2, 2], "dtype": "float32"}, {"values": np.zeros(3, np.float32)}, "needs 4 values"),
    ({"encoding": "dense", "shape": [2], "dtype": "object"}, {"values": np.zeros(2)}, "not an allowed"),
    ({"encoding": "dense", "shape": [-1], "dtype": "float32"}, {"values": np.zeros(2)}, "non-negative"),
    ({"encoding": "dense", "shape": [2], "dtype": "int8"}, {"values": np.zeros(2, np.int64)}, "without loss"),
    ({"encoding": "dense", "shape": [2], "dtype": "float32"}, {}, "needs a stored array 'values'"),
    ({"encoding": "constant", "shape": [2 ** 40], "dtype": "float32"}, {"value": np.zeros(1, np.float32)}, "too large"),
    ({"encoding": "constant", "shape": [4], "dtype": "float32"}, {"value": np.zeros(2, np.float32)}, "exactly one"),
    ({"encoding": "bitmask", "shape": [16], "dtype": "float32"},
     {"mask": np.array([255, 0], np.uint8), "values": np.ones(3, np.float32)}, "marks 8 non-zeros"),
    ({"encoding": "bitmask_z", "shape": [16], "dtype": "float32"},
     {"zmask": np.array([1, 2, 3], np.uint8), "values": np.ones(3, np.float32)}, "corrupt"),
    ({"encoding": "csr", "shape": [2, 3], "dtype": "float32"},
     {"indptr": np.array([0, 1, 2], np.int32), "indices": np.array([0, 7], np.int32),
      "values": np.ones(2, np.float32)}, "column index"),
    ({"encoding": "csr", "shape": [2, 3], "dtype": "float32"},
     {"indptr": np.array([0, 2, 1], np.int32), "indices": np.array([0, 1], np.int32),
      "values": np.ones(2, np.float32)}, "do not fit"),
    ({"encoding": "zip", "shape": [2], "dtype": "float32"}, {}, "unknown encoding"),
    ({"encoding": "zlib", "shape": [64], "dtype": "int8", "stored": "int8"},
     {"zbytes": np.frombuffer(__import__("zlib").compress(bytes(65)), np.uint8)}, "needs 64"),
    ({"encoding": "zlib", "shape": [4], "dtype": "int8", "stored": "int64"},
     {"zbytes": np.zeros(3, np.uint8)}, "without loss"),
    ({"encoding": "zlib", "shape": [4], "dtype": "int8", "stored": "int8"},
     {"zbytes": np.zeros(3, np.uint8)}, "corrupt"),
])
def test_decode_rejects_what_does_not_fit(meta, arrays, match):
    with pytest.raises(ValueError, match=match):
        packing.decode(meta, arrays)


def test_weight_only_codes_round_trip_at_every_width():
    from compresslib.core.packing import code_bytes, pack_codes, unpack_codes

    rng = np.random.default_rng(0)
    for bits in (2, 3, 4, 8):
        q = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=101).astype(np.int8)
        packed = pack_codes(q, bits)
        assert packed.size == code_bytes(101, bits) == {2: 26, 3: 38, 4: 51, 8: 101}[bits]
        assert np.array_equal(unpack_codes(packed, 101, bits), q)
