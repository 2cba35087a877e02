"""Sparse tensor encodings and the break-even choice."""
import numpy as np
import pytest

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
    costs = {e: packing.encoded_cost(packing.encode(w, e)[1]) for e in packing.ENCODERS}
    assert packing.encoded_cost(arrays) == min(costs.values())


def test_csr_beats_plain_bitmask_when_almost_empty(rng):
    w = np.zeros((300, 1000), dtype=np.float32)
    w[rng.integers(0, 300, 30), rng.integers(0, 1000, 30)] = 1.5
    cost = {e: packing.encoded_cost(packing.encode(w, e)[1]) for e in packing.ENCODERS}
    assert cost["csr"] < cost["bitmask"] < cost["dense"]
    # the deflated bitmask (a run of zero bytes compresses ~1000:1) is smaller still, and is chosen
    assert cost["bitmask_z"] < cost["csr"] and packing.encode(w)[0]["encoding"] == "bitmask_z"


def test_integer_arrays_stay_dense():
    meta, _ = packing.encode(np.zeros((100, 100), dtype=np.int8))
    assert meta["encoding"] == "dense"
    with pytest.raises(ValueError, match="does not apply"):
        packing.encode(np.zeros(10, dtype=np.int32), "csr")
