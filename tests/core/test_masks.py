"""Magnitude, global, N:M masks and channel selection (NumPy core)."""
import numpy as np
import pytest

from compresslib.core import masks


def test_magnitude_mask_exact_count_and_largest_kept(rng):
    w = rng.normal(size=(30, 40)).astype(np.float32)
    m = masks.magnitude_mask(w, 0.9)
    assert m.shape == w.shape and m.dtype == bool
    assert int((~m).sum()) == 1080  # round(0.9 * 1200)
    assert np.abs(w[m]).min() >= np.abs(w[~m]).max()


def test_magnitude_mask_zero_sparsity_keeps_all(rng):
    assert masks.magnitude_mask(rng.normal(size=10), 0.0).all()


@pytest.mark.parametrize("bad", [1.0, -0.1, 1.5, "0.5", True])
def test_bad_sparsity_raises(bad):
    with pytest.raises(ValueError, match="sparsity must be in \\[0, 1\\)"):
        masks.magnitude_mask(np.ones(4), bad)


def test_same_input_same_mask_and_ties_are_deterministic():
    w = np.ones((4, 4))
    a, b = masks.magnitude_mask(w, 0.5), masks.magnitude_mask(w.copy(), 0.5)
    assert (a == b).all()
    assert a.ravel().tolist() == [False] * 8 + [True] * 8  # stable: the earlier tie is pruned


def test_global_masks_use_one_threshold(rng):
    small = 0.01 * rng.normal(size=(50, 20))
    big = rng.normal(size=(10, 10))
    ms = masks.global_magnitude_masks([small, big], 0.5)
    assert sum(int((~m).sum()) for m in ms) == 550
    # every pruned weight comes from the small-magnitude layer
    assert int((~ms[0]).sum()) == 550 and ms[1].all()
    thr = max(np.abs(small[~ms[0]]).max(), np.abs(big[~ms[1]]).max() if (~ms[1]).any() else 0)
    assert np.abs(small[ms[0]]).min() >= thr and np.abs(big[ms[1]]).min() >= thr


def test_nm_mask_two_of_four(rng):
    w = rng.normal(size=(8, 16, 3, 3))
    m = masks.nm_mask(w, 2, 4)
    groups = m.reshape(8, -1, 4)
    assert (groups.sum(-1) == 2).all()
    assert masks.is_nm_sparse(w * m, 2, 4) and not masks.is_nm_sparse(w, 2, 4)
    # in every group the kept pair is the pair of largest magnitudes
    aw = np.abs(w).reshape(8, -1, 4)
    assert (np.where(groups, aw, np.inf).min(-1) >= np.where(groups, -np.inf, aw).max(-1)).all()


def test_nm_rejects_bad_fan_in_and_bad_nm():
    with pytest.raises(ValueError, match="not a multiple of m=4"):
        masks.nm_mask(np.ones((2, 9)), 2, 4)
    with pytest.raises(ValueError, match="1 <= n < m"):
        masks.nm_mask(np.ones((2, 8)), 4, 4)


def test_channel_scores_and_keep():
    w = np.array([[1.0, -1.0], [0.1, 0.1], [3.0, 0.0], [0.5, -0.5]])
    assert masks.channel_scores(w, "l1").tolist() == [2.0, 0.2, 3.0, 1.0]
    np.testing.assert_allclose(masks.channel_scores(w, "l2"), [np.sqrt(2), np.sqrt(0.02), 3.0, np.sqrt(0.5)])
    assert masks.channels_to_keep(masks.channel_scores(w, "l1"), 0.5).tolist() == [0, 2]
    r1 = masks.channel_scores(w, "random", np.random.default_rng(3))
    r2 = masks.channel_scores(w, "random", np.random.default_rng(3))
    assert (r1 == r2).all()


def test_ratio_removing_every_channel_is_refused():
    assert masks.n_channels_kept(16, 0.5) == 8
    with pytest.raises(ValueError, match="remove every one of the 3 channels of conv9"):
        masks.channels_to_keep(np.ones(3), 0.7, name="conv9")


def test_sparsity_accounting():
    s = masks.sparsity_summary({"a": np.array([0.0, 1.0, 0.0, 2.0]), "b": np.zeros(6)})
    assert s["size"] == 10 and s["zeros"] == 8 and s["sparsity"] == 0.8
    assert s["layers"]["a"] == (4, 2, 0.5)
    assert masks.sparsity(np.array([1.0, 0.0])) == 0.5
