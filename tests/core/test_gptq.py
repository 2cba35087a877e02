"""GPTQ, round-to-nearest, AWQ, Wanda and SparseGPT math (NumPy core): errors against each other, exact codes."""
import numpy as np
import pytest

from compresslib.core import awq, gptq, masks, sparsegpt


@pytest.fixture(scope="module")
def layer():
    """A layer with correlated inputs and a few outlier channels (what transformers' activations look like)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2048, 128)) @ rng.normal(size=(128, 128)) * 0.1
    x[:, :3] *= 20
    w = rng.normal(size=(96, 128)).astype(np.float32)
    return x, w, gptq.hessian(x)


@pytest.mark.parametrize("bits,ratio", [(4, 0.6), (3, 0.6), (8, 0.6)])
@pytest.mark.parametrize("group_size", [None, 32])
@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_output_error_well_below_rtn(layer, bits, ratio, group_size, act_order):
    x, w, h = layer
    g = gptq.gptq(w, h, bits, group_size, act_order)
    r = gptq.rtn(w, bits, group_size)
    eg, er = gptq.output_error(x, w, g.dequantize()), gptq.output_error(x, w, r.dequantize())
    assert eg < ratio * er, (eg, er)
    qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    assert g.q.dtype == np.int8 and qmin <= g.q.min() and g.q.max() <= qmax
    assert g.scale.shape == (96, 128 // (group_size or 128))


def test_gptq_int3_beats_rtn_int4(layer):
    x, w, h = layer
    e3 = gptq.output_error(x, w, gptq.gptq(w, h, 3, 32).dequantize())
    e4 = gptq.output_error(x, w, gptq.rtn(w, 4, 32).dequantize())
    assert e3 < e4


def test_rtn_matches_core_quantize_tensor(layer):
    from compresslib.core import quant as cq

    _, w, _ = layer
    r = gptq.rtn(w, 4, 32)
    ref = cq.quantize_tensor(w, bits=4, symmetric=True, axis=1, group_size=32)
    assert np.array_equal(r.q.reshape(-1), ref.q.reshape(-1))
    assert np.allclose(r.scale.reshape(-1), ref.scale.reshape(-1))


def test_gptq_identity_hessian_is_rtn(layer):
    """With H = I (uncorrelated inputs of equal power) no error can be compensated: GPTQ = RTN."""
    _, w, _ = layer
    g = gptq.gptq(w, np.eye(128), 4, None, damping=0.0, clip_search=False)
    assert np.array_equal(g.q, gptq.rtn(w, 4, None).q)


def test_dead_channel_gets_zero_and_bad_inputs_named(layer):
    x, w, h = layer
    h = h.copy()
    h[5, :] = h[:, 5] = 0
    assert (gptq.gptq(w, h, 4, 32).q[:, 5] == 0).all()
    with pytest.raises(ValueError, match="group_size must divide the layer's fan-in 128"):
        gptq.gptq(w, h, 4, 48)
    with pytest.raises(ValueError, match="hessian must be \\(128, 128\\)"):
        gptq.gptq(w, np.eye(3), 4)
    with pytest.raises(ValueError, match="bits must be an integer in \\[2, 8\\]"):
        gptq.rtn(w, 9)


def test_accumulator_equals_one_shot(layer):
    x, _, h = layer
    acc = gptq.HessianAccumulator(128)
    for part in np.array_split(x, 3):
        acc.update(part)
    assert acc.n == 2048 and np.allclose(acc.h, h)
    assert np.allclose(acc.norm, np.linalg.norm(x, axis=0))


def test_awq_never_worse_than_rtn_and_better_with_outliers(layer):
    x, w, _ = layer
    found = awq.search(w, x, bits=4, group_size=32)
    assert found.error <= found.rtn_error
    assert found.error < 0.8 * found.rtn_error and found.alpha > 0
    assert np.isclose(gptq.output_error(x, w, found.dequantize()), found.error)
    assert found.input_scale.shape == (128,)


def test_wanda_and_sparsegpt_beat_magnitude(layer):
    x, w, h = layer
    norm = np.linalg.norm(x, axis=0)
    mag = w * masks.magnitude_mask(w, 0.5)
    wan = w * sparsegpt.wanda_mask(w, norm, 0.5)
    sgpt, keep = sparsegpt.sparsegpt(w, h, 0.5)
    e = {k: gptq.output_error(x, w, v) for k, v in (("mag", mag), ("wanda", wan), ("sparsegpt", sgpt))}
    assert e["wanda"] < 0.75 * e["mag"] and e["sparsegpt"] < 0.75 * e["mag"], e
    assert int((sgpt == 0).sum()) == 96 * 64 and np.array_equal(sgpt != 0, keep)


def test_two_four(layer):
    x, w, h = layer
    norm = np.linalg.norm(x, axis=0)
    wan = w * sparsegpt.wanda_mask(w, norm, n=2, m=4)
    sgpt, _ = sparsegpt.sparsegpt(w, h, n=2, m=4)
    mag = w * masks.nm_mask(w, 2, 4)
    for pruned in (wan, sgpt):
        assert masks.is_nm_sparse(pruned, 2, 4) and int((pruned == 0).sum()) == 96 * 64
    assert gptq.output_error(x, w, sgpt) < gptq.output_error(x, w, mag)
    with pytest.raises(ValueError, match="fan-in 128 is not a multiple of m=5"):
        sparsegpt.sparsegpt(w, h, n=2, m=5)


def test_inverse_cholesky_is_upper_factor_of_the_damped_inverse(layer):
    _, _, h = layer
    u = gptq.inverse_cholesky(h, damping=0.01)
    damped = h + 0.01 * np.mean(np.diag(h)) * np.eye(128)
    assert np.allclose(u, np.triu(u)) and (np.diag(u) > 0).all()
    assert np.allclose(u.T @ u, np.linalg.inv(damped), rtol=1e-6, atol=1e-9)
