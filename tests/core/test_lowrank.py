"""Core low-rank math: costs, rank rules, SVD/Tucker-2/CP factors, BatchNorm folding."""
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from compresslib.core import lowrank as L


def test_costs_exact():
    assert L.svd_cost(1024, 784, 64) == 64 * (1024 + 784)
    assert L.tucker_cost(64, 32, 3, 3, 16, 24) == 32 * 16 + 16 * 24 * 9 + 24 * 64
    assert L.tucker_cost(64, 32, 3, 3, 32, 24) == 32 * 24 * 9 + 24 * 64          # R1 = C_in: no first 1×1
    assert L.tucker_cost(64, 32, 3, 3, 16, 64) == 32 * 16 + 16 * 64 * 9          # R2 = C_out: no last 1×1
    assert L.tucker_cost(64, 32, 3, 3, 32, 64) == 64 * 32 * 9                    # both: the kernel itself
    assert L.cp_cost(16, 6, 5, 5, 8) == 8 * (6 + 5 + 5 + 16)


@given(st.integers(1, 300), st.integers(1, 300))
@settings(max_examples=60, deadline=None)
def test_max_useful_rank_is_the_break_even(m, n):
    r = L.max_useful_svd_rank(m, n)
    assert L.svd_cost(m, n, r + 1) >= m * n
    if r:
        assert L.svd_cost(m, n, r) < m * n


def test_energy_rank():
    s = np.array([4.0, 2.0, 1.0, 1.0])  # squares 16, 4, 1, 1 of 22
    assert L.energy_rank(s, 16 / 22) == 1
    assert L.energy_rank(s, 0.75) == 2
    assert L.energy_rank(s, 21 / 22) == 3
    assert L.energy_rank(s, 1.0) == 4
    for bad in (0, -0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="energy"):
            L.energy_rank(s, bad)


def test_plan_svd_rules():
    p = L.plan_svd((1024, 1024), ratio=0.25)
    assert (p.rank, p.params_after, p.accepted) == (128, 128 * 2048, True)
    refused = L.plan_svd((10, 1024), rank=10)
    assert not refused.accepted and "10·(10+1024)" in refused.reason and "1..9" in refused.reason
    with pytest.raises(ValueError, match=r"rank=11 exceeds .*allowed 1..10"):
        L.plan_svd((10, 1024), rank=11)
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="rank"):
            L.plan_svd((8, 8), rank=bad)
    with pytest.raises(ValueError, match="exactly one"):
        L.plan_svd((8, 8), rank=2, energy=0.5)
    w = np.diag([3.0, 2.0, 1.0, 0.0, 0.0, 0.0])
    assert L.plan_svd(w.shape, energy=0.9, w=w).rank == 2


def test_plan_tucker_and_cp_rules():
    p = L.plan_tucker((64, 32, 3, 3), ranks=(8, 16))
    assert p.params_after == 32 * 8 + 8 * 16 * 9 + 16 * 64 and p.accepted
    full = L.plan_tucker((16, 16, 3, 3), ranks=(16, 16))                 # both modes absorbed: the kernel
    assert (full.params_after, full.accepted) == (2304, False) and full.reason == \
        "ranks (16, 16) cost 16·16·3·3 = 2304 weights ≥ 2304 of the kernel"
    one = L.plan_tucker((16, 16, 3, 3), ranks=(8, 16))                   # Tucker-1: 16·8 + 8·16·9
    assert (one.params_after, one.accepted) == (1280, True)
    with pytest.raises(ValueError, match=r"ranks\[0\] \(R1\)=2 exceeds .*C_in=1"):
        L.plan_tucker((16, 1, 3, 3), ranks=(2, 4))
    with pytest.raises(ValueError, match=r"ranks\[1\] \(R2\)=17"):
        L.plan_tucker((16, 8, 3, 3), ranks=(2, 17))
    assert not L.plan_cp((16, 1, 3, 3), 8).accepted
    assert L.plan_cp((16, 6, 5, 5), 8).params_after == 256


def test_svd_factors_are_eckart_young(rng):
    w = rng.normal(size=(40, 30))
    s = np.linalg.svd(w, compute_uv=False)
    for r in (1, 5, 29):
        a, b = L.svd_factors(w, r)
        assert a.shape == (40, r) and b.shape == (r, 30)
        err = np.linalg.norm(a @ b - w)
        assert err == pytest.approx(np.sqrt(np.sum(s[r:] ** 2)), rel=1e-9)
        assert L.svd_error(w, r) == pytest.approx(err / np.linalg.norm(w), rel=1e-9)
        # the balanced split: both factors carry √S
        np.testing.assert_allclose(np.linalg.norm(a, axis=0), np.linalg.norm(b, axis=1), rtol=1e-9)
    a, b = L.svd_factors(w, 30)
    np.testing.assert_allclose(a @ b, w, atol=1e-10)


def test_tucker2_exact_at_full_rank_and_better_with_rank(rng):
    k = rng.normal(size=(16, 8, 3, 3))
    first, core, last = L.tucker2(k, (8, 16))
    assert (first.shape, core.shape, last.shape) == ((8, 8), (16, 8, 3, 3), (16, 16))
    assert L.relative_error(L.tucker2_reconstruct(first, core, last), k) < 1e-10
    errs = [L.relative_error(L.tucker2_reconstruct(*L.tucker2(k, (r, 2 * r))), k) for r in (1, 2, 4, 6)]
    assert all(a > b for a, b in zip(errs, errs[1:]))
    # a kernel of exact multilinear rank (2, 3) is recovered exactly
    low = L.tucker2_reconstruct(rng.normal(size=(2, 8)), rng.normal(size=(3, 2, 3, 3)), rng.normal(size=(16, 3)))
    assert L.relative_error(L.tucker2_reconstruct(*L.tucker2(low, (2, 3))), low) < 1e-8


def test_absorbing_a_full_rank_mode_keeps_the_kernel(rng):
    k = rng.normal(size=(16, 8, 3, 3))
    for ranks, shapes in [((8, 4), (None, (4, 8, 3, 3), (16, 4))), ((3, 16), ((3, 8), (16, 3, 3, 3), None)),
                          ((3, 4), ((3, 8), (4, 3, 3, 3), (16, 4))), ((8, 16), (None, (16, 8, 3, 3), None))]:
        factors = L.tucker2(k, ranks)
        absorbed = L.absorb_full_modes(*factors)
        assert tuple(None if f is None else f.shape for f in absorbed) == shapes
        np.testing.assert_allclose(L.tucker2_reconstruct(*absorbed), L.tucker2_reconstruct(*factors), atol=1e-12)
    np.testing.assert_allclose(L.tucker2_reconstruct(*L.absorb_full_modes(*L.tucker2(k, (8, 16)))), k, atol=1e-10)


def test_cp_recovers_a_low_rank_kernel(rng):
    r = 3
    k = L.cp_reconstruct(rng.normal(size=(r, 6)), rng.normal(size=(r, 5)), rng.normal(size=(r, 5)),
                         rng.normal(size=(16, r)))
    factors = L.cp(k, r)
    assert [f.shape for f in factors] == [(r, 6), (r, 5), (r, 5), (16, r)]
    assert L.relative_error(L.cp_reconstruct(*factors), k) < 1e-4
    noisy = rng.normal(size=(16, 6, 5, 5))
    e4, e12 = (L.relative_error(L.cp_reconstruct(*L.cp(noisy, q)), noisy) for q in (4, 12))
    assert 0 < e12 < e4 < 1


def test_fold_bn_matches_batchnorm(rng):
    w, b = rng.normal(size=(5, 7)), rng.normal(size=5)
    gamma, beta, mean, var = rng.normal(size=5), rng.normal(size=5), rng.normal(size=5), rng.random(5) + 0.1
    x = rng.normal(size=(7, 3))
    bn = gamma[:, None] * ((w @ x + b[:, None]) - mean[:, None]) / np.sqrt(var[:, None] + 1e-5) + beta[:, None]
    fw, fb = L.fold_bn(w, b, gamma, beta, mean, var, 1e-5)
    np.testing.assert_allclose(fw @ x + fb[:, None], bn, atol=1e-12)
    # output axis last (Keras Dense kernel (in, out)), no bias
    fw2, fb2 = L.fold_bn(w.T, None, gamma, beta, mean, var, 1e-5, out_axis=1)
    np.testing.assert_allclose(fw2, fw.T, atol=1e-12)
    np.testing.assert_allclose(fb2, (0 - mean) * gamma / np.sqrt(var + 1e-5) + beta, atol=1e-12)


def test_bad_shapes():
    with pytest.raises(ValueError, match="2-D"):
        L.svd_factors(np.zeros((2, 2, 2)), 1)
    with pytest.raises(ValueError, match="4-D"):
        L.tucker2(np.zeros((4, 4)), (1, 1))
    with pytest.raises(ValueError, match="4-D"):
        L.singular_values(np.zeros(3))
