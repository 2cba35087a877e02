"""Property tests of the NumPy quantization math."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from compresslib.core import quant as cq

floats = st.floats(-100, 100, allow_nan=False, width=32)
tensors = arrays(np.float32, st.tuples(st.integers(1, 6), st.integers(1, 8)), elements=floats)


@settings(max_examples=60, deadline=None)
@given(x=tensors, bits=st.integers(2, 8), symmetric=st.booleans(), per_channel=st.booleans())
def test_round_trip_within_half_scale_and_in_range(x, bits, symmetric, per_channel):
    axis = 0 if per_channel else None
    qt = cq.quantize_tensor(x, bits, symmetric=symmetric, axis=axis)
    qmin, qmax = cq.qrange(bits)
    assert qt.q.min() >= qmin and qt.q.max() <= qmax
    scale = qt.scale.reshape(-1, 1) if per_channel else qt.scale
    err = np.abs(qt.dequantize() - x)
    # inside the range the error is at most half a step (plus float32 rounding); symmetric clips one end by <= scale/2
    assert np.all(err <= scale / 2 + 1e-5 * (1 + np.abs(x)) + (scale / 2 if symmetric else 0))


@settings(max_examples=60, deadline=None)
@given(lo=st.floats(-50, 50, width=32), width=st.floats(0.0009765625, 50, width=32), bits=st.integers(2, 8),
       symmetric=st.booleans())
def test_zero_is_exact(lo, width, bits, symmetric):
    s, z = cq.scale_zero_point(lo, lo + width, bits, symmetric)
    q0 = cq.quantize(np.zeros(3, np.float32), s, z, bits)
    assert np.all(cq.dequantize(q0, s, z) == 0.0)


def test_symmetric_matches_hand_computation():
    x = np.array([-1.0, 0.0, 0.5, 1.0], np.float32)
    qt = cq.quantize_tensor(x, 8)
    assert qt.q.tolist() == [-127, 0, 64, 127]
    assert np.isclose(qt.scale, 1 / 127.5)


def test_affine_zero_point_and_range():
    s, z = cq.scale_zero_point(np.float32(0.0), np.float32(2.55), 8, symmetric=False, signed=False)
    assert np.isclose(s, 0.01) and int(z) == 0
    assert cq.quantize([2.55, 3.0], s, z, 8, signed=False).tolist() == [255, 255]


def test_per_group_scales_and_shape():
    x = np.arange(32, dtype=np.float32).reshape(2, 16) - 7
    qt = cq.quantize_tensor(x, 4, axis=1, group_size=8)
    assert qt.q.shape == (2, 16) and qt.scale.shape == (4,)
    assert cq.sqnr_db(x, qt.dequantize()) > 20


@pytest.mark.parametrize("observer", cq.OBSERVERS)
def test_observers_clip_outliers_or_not(observer, rng):
    x = rng.normal(size=(64, 16)).astype(np.float32)
    x[0, 0] = 50.0
    lo, hi = cq.observe(x, observer, bits=3, percentile=99.0)
    if observer == "percentile":
        assert hi < 50.0
    elif observer == "minmax":
        assert hi == 50.0


def test_mse_beats_minmax_on_heavy_tails(rng):
    x = rng.standard_t(2, size=4096).astype(np.float32)
    errs = {}
    for obs in ("minmax", "mse"):
        qt = cq.quantize_tensor(x, 4, observer=obs)
        errs[obs] = np.mean((qt.dequantize() - x) ** 2)
    assert errs["mse"] < errs["minmax"]


def test_int4_packing_round_trip(rng):
    q = rng.integers(-8, 8, size=101).astype(np.int8)
    packed = cq.pack_int4(q)
    assert packed.nbytes == 51
    assert (cq.unpack_int4(packed, 101) == q).all()


@pytest.mark.parametrize("bad", [1, 9, 4.0, True])
def test_bad_bits_named(bad):
    with pytest.raises(ValueError, match="bits"):
        cq.quantize_tensor(np.ones(4), bits=bad)


@pytest.mark.parametrize("bad", [None, np.zeros((0, 4)), np.zeros(4)])
def test_bad_calibration_named(bad):
    with pytest.raises(ValueError, match="calibration_data"):
        cq.check_calibration(bad)
