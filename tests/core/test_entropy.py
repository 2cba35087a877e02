"""core.encodings.entropy: codebook encodings are exact, small, and refuse corrupt input with a ValueError."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from compresslib.core import packing, sharing
from compresslib.core.encodings import entropy


def _shared(rng, shape=(300, 200), sparsity=0.9, bits=5):
    w = rng.normal(0, 0.05, shape).astype(np.float32)
    w[rng.random(shape) < sparsity] = 0
    return sharing.shared_weights(w, bits)


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.97, 0.999])
@pytest.mark.parametrize("encoding", ["codebook", "codebook_ans"])
def test_round_trip_is_exact(rng, sparsity, encoding):
    w = _shared(rng, sparsity=sparsity)
    meta, parts = packing.encode(w, encoding)
    out = packing.decode(meta, parts)
    assert out.dtype == w.dtype and out.tobytes() == w.tobytes()


def test_sizes_near_the_entropy(rng):
    """5-bit codebook at 90 % zeros: fixed-width ≈ bitmask + 5 bits/non-zero; ANS within 2 % of the entropy."""
    w = _shared(rng, sparsity=0.9, bits=5)
    n, nnz = w.size, int((w != 0).sum())
    raw = packing.encode(w, "codebook")
    assert raw[0]["pos"] == "gaps"  # relative indices beat the 7,500-byte bitmask at 10 % density
    assert packing.stored_bytes(raw[1]) < n // 8 + nnz * 5 / 8
    meta, parts = packing.encode(w, "codebook_ans")
    codebook, labels = sharing.clusters(w)
    # the ideal cost of positions (i.i.d. at this density) plus values
    ideal = (entropy.entropy_bits(np.array([n - nnz, nnz])) + entropy.entropy_bits(np.bincount(labels[labels >= 0]))) / 8
    assert parts["words"].nbytes < 1.02 * ideal
    assert packing.stored_bytes(parts) < packing.stored_bytes(raw[1]) < packing.stored_bytes(packing.encode(w, "bitmask_z")[1])
    assert packing.encode(w)[0]["encoding"] == "codebook_ans"


def test_gap_fillers_paper_example():
    """Han et al. Fig. 2 style: with 3-bit gaps a distance over 8 needs a filler zero."""
    positions = np.array([1, 4, 15])
    gaps, values = entropy.gaps_with_fillers(positions, np.array([1, 2, 3]), 3)
    assert gaps.tolist() == [1, 2, 7, 2] and values.tolist() == [1, 2, 0, 3]
    assert (np.cumsum(gaps + 1) - 1).tolist() == [1, 4, 12, 15]


def test_bits_packing_round_trip(rng):
    for bits in range(1, 9):
        s = rng.integers(0, 2 ** bits, 1001)
        assert np.array_equal(entropy.unpack_bits(entropy.pack_bits(s, bits), bits, s.size), s)


def test_huffman_reference(rng):
    counts = np.array([50, 20, 10, 10, 5, 3, 1, 1])
    lengths = entropy.huffman_code_lengths(counts)
    assert (2.0 ** -lengths[counts > 0]).sum() == 1.0            # Kraft: a complete prefix code
    avg = (lengths * counts).sum() / counts.sum()
    h = entropy.entropy_bits(counts) / counts.sum()
    assert h <= avg < h + 1
    s = rng.choice(8, size=500, p=counts / counts.sum())
    lengths = entropy.huffman_code_lengths(np.bincount(s, minlength=8))
    data = entropy.huffman_encode(s, lengths)
    assert len(data) == (int((lengths[s]).sum()) + 7) // 8
    assert np.array_equal(entropy.huffman_decode(data, lengths, s.size), s)


def test_not_for_other_tensors(rng):
    assert entropy._analyse(rng.normal(size=1000).astype(np.float32)) is None        # > 256 values
    assert entropy._analyse(np.arange(10, dtype=np.int32)) is None                    # integers
    assert entropy._analyse(np.array([0.5, -0.0, 0.5], np.float32)) is None           # -0.0 kept exact elsewhere
    assert entropy._analyse(np.array([0.5, np.nan], np.float32)) is None
    meta, parts = packing.encode(np.array([0.5, -0.0, 0.0, 0.5], np.float32))
    assert np.signbit(packing.decode(meta, parts)[1])


def test_float16_and_float64_codebooks(rng):
    for dtype in (np.float16, np.float64):
        w = _shared(rng, (50, 40)).astype(dtype)
        meta, parts = packing.encode(w, "codebook_ans")
        assert packing.decode(meta, parts).tobytes() == w.tobytes()


# --------------------------------------------------------------------------- corrupt input
def _corrupt(meta, parts, **changes):
    meta = dict(meta, **{k: v for k, v in changes.items() if not k.startswith("part_")})
    parts = dict(parts)
    for k, v in changes.items():
        if k.startswith("part_"):
            parts[k[5:]] = v
    return meta, parts


@pytest.mark.parametrize("encoding", ["codebook", "codebook_ans"])
def test_corrupt_fields_are_value_errors(rng, encoding):
    w = _shared(rng, (40, 30))
    meta, parts = packing.encode(w, encoding)
    cases = {
        "larger than the 256": dict(k=300),
        "codebook holds": dict(k=meta["k"] - 1),
        "positions must be": dict(pos="rle"),
        "field 'g'": dict(pos="gaps", g=12),
        "larger than the 256 allowed": dict(part_codebook=np.zeros(400, np.float32), k=256),
        "cannot be float32": dict(part_codebook=parts["codebook"].astype(np.float64) + 1e-12),
        "needs a stored array": dict(part_codebook=None),
    }
    for message, change in cases.items():
        m, p = _corrupt(meta, parts, **change)
        p = {k: v for k, v in p.items() if v is not None}
        with pytest.raises(ValueError, match=message):
            packing.decode(m, p)


def test_corrupt_ans_counts_and_words(rng):
    w = _shared(rng, (40, 30))
    meta, parts = packing.encode(w, "codebook_ans")
    counts = parts["counts"].astype(np.int64)
    bigger = counts.copy(); bigger[0] += 10 ** 9
    for bad, message in [(bigger, "symbols, a tensor of"), (counts[:-1], "symbol counts must be"),
                         (-counts, "non-negative")]:
        with pytest.raises(ValueError, match=message):
            packing.decode(meta, dict(parts, counts=bad))
    words = parts["words"].copy(); words[len(words) // 2] ^= 0x00F0F000
    with pytest.raises(ValueError, match="ANS stream is corrupt"):
        packing.decode(meta, dict(parts, words=words))
    with pytest.raises(ValueError, match="ANS stream is corrupt"):
        packing.decode(meta, dict(parts, words=parts["words"][:-3]))
    with pytest.raises(ValueError, match="alphabet sizes"):
        packing.decode(dict(meta, a=[4, 4]), parts)
    with pytest.raises(ValueError, match="uint32"):
        packing.decode(meta, dict(parts, words=parts["words"].astype(np.int64)))


def test_oversized_tensor_is_refused_before_decoding(rng):
    w = _shared(rng, (40, 30))
    meta, parts = packing.encode(w, "codebook_ans")
    with pytest.raises(ValueError, match="too large"):
        packing.decode(dict(meta, shape=[2 ** 20, 2 ** 20]), parts)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_fuzz_decoder_never_fails_other_than_value_error(data):
    """Flip bytes of every stored part, or change meta fields: decode returns an array of the right
    shape (a change that happens to be consistent) or raises ValueError — never another error."""
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 16)))
    shape = (data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30)))
    w = _shared(rng, shape, sparsity=data.draw(st.sampled_from([0.0, 0.5, 0.95])),
                bits=data.draw(st.integers(1, 8)))
    encoding = data.draw(st.sampled_from(["codebook", "codebook_ans"]))
    try:
        meta, parts = packing.encode(w, encoding)
    except ValueError:  # all-zero and one-element tensors have no codebook encoding
        assert not w.any() or w.size == 1
        return
    parts = {k: v.copy() for k, v in parts.items()}
    for name in data.draw(st.lists(st.sampled_from(sorted(parts)), max_size=3)):
        raw = bytearray(parts[name].tobytes())
        if raw:
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
        if data.draw(st.booleans()) and raw:
            raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
        dtype = parts[name].dtype
        raw = raw[:len(raw) - len(raw) % dtype.itemsize]
        parts[name] = np.frombuffer(bytes(raw), dtype=dtype).copy()
    for key in data.draw(st.lists(st.sampled_from(["k", "g", "n", "pos", "a"]), max_size=2)):
        meta[key] = data.draw(st.one_of(st.integers(-3, 300), st.sampled_from(["gaps", "bitmask", "none", None]),
                                        st.lists(st.integers(0, 300), max_size=3)))
    try:
        out = packing.decode(meta, parts)
    except ValueError:
        return
    assert out.shape == w.shape and out.dtype == w.dtype
