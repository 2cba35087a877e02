"""core.sharing: exact 1-D k-means against scikit-learn, zeros kept out of the clusters, determinism."""
import numpy as np
import pytest
from sklearn.cluster import KMeans

from compresslib.core import sharing


def _sklearn(x, c0):
    km = KMeans(len(c0), init=np.asarray(c0).reshape(-1, 1), n_init=1, algorithm="lloyd", tol=0,
                max_iter=1000).fit(np.asarray(x, np.float64).reshape(-1, 1))
    order = np.argsort(km.cluster_centers_.ravel())
    rank = np.empty_like(order); rank[order] = np.arange(len(order))
    return km.cluster_centers_.ravel()[order], rank[km.labels_]


@pytest.mark.parametrize("init,data", [("linear", "uniform"), ("density", "normal"), ("random", "normal"),
                                       ("density", "bimodal"), ("random", "bimodal")])
@pytest.mark.parametrize("k", [4, 32])
def test_matches_sklearn_lloyd(rng, init, data, k):
    x = {"uniform": lambda: rng.uniform(-0.2, 0.3, 6000),
         "normal": lambda: rng.normal(0, 0.05, 6000),
         "bimodal": lambda: np.concatenate([rng.normal(-0.1, 0.02, 3000), rng.normal(0.08, 0.03, 3000)])}[data]()
    c0 = sharing.initial_centroids(np.sort(x), k, init, seed=3)
    ours, labels = sharing.kmeans_1d(x, k, init=init, seed=3, max_iter=1000)
    ref, ref_labels = _sklearn(x, c0)
    assert ours.shape == (k,)
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-12)
    assert (labels == ref_labels).mean() >= 0.999  # only points on a midpoint may differ (float rounding)


def test_inits_differ_and_linear_spans_the_range(rng):
    x = np.sort(rng.normal(0, 1, 5000))
    lin = sharing.initial_centroids(x, 8, "linear")
    assert lin[0] == x[0] and lin[-1] == x[-1] and np.allclose(np.diff(lin), np.diff(lin)[0])
    den = sharing.initial_centroids(x, 8, "density")
    assert np.abs(den).max() < np.abs(lin).max()       # quantiles crowd where the weights are dense
    r1, r2 = (sharing.initial_centroids(x, 8, "random", seed=s) for s in (1, 1))
    assert np.array_equal(r1, r2) and set(r1) <= set(x)
    with pytest.raises(ValueError, match="init must be one of"):
        sharing.initial_centroids(x, 8, "kmeans++")


def test_empty_clusters_are_dropped(rng):
    x = np.concatenate([rng.normal(0, 0.01, 1000), [5.0]])   # linear init leaves the middle empty
    c, labels = sharing.kmeans_1d(x, 16)
    assert 2 <= c.size < 16 and np.all(np.diff(c) > 0)
    assert labels.max() == c.size - 1 and set(np.unique(labels)) == set(range(c.size))
    np.testing.assert_allclose(c[labels[-1]], 5.0)


def test_few_distinct_values_are_exact():
    x = np.array([3.0, 1.0, 3.0, 2.0])
    c, labels = sharing.kmeans_1d(x, 8)
    assert c.tolist() == [1.0, 2.0, 3.0] and labels.tolist() == [2, 0, 2, 1]


def test_share_keeps_zeros_out_of_clusters(rng):
    w = rng.normal(0, 0.1, (64, 32)).astype(np.float32)
    w[rng.random(w.shape) < 0.9] = 0
    for bits in (1, 3, 5, 8):
        codebook, labels = sharing.share(w, bits)
        assert codebook.dtype == np.float32 and codebook.size <= 2 ** bits and np.all(np.diff(codebook) > 0)
        assert np.array_equal(labels == -1, w == 0)
        shared = sharing.shared_weights(w, bits)
        assert shared.dtype == w.dtype and shared.shape == w.shape
        assert np.array_equal(shared == 0, w == 0) and not np.signbit(shared[w == 0]).any()
        assert np.unique(shared[shared != 0]).size == codebook.size
    # more bits, closer to the original
    err = [np.abs(sharing.shared_weights(w, b) - w).mean() for b in (2, 4, 6)]
    assert err[0] > err[1] > err[2]


def test_share_is_deterministic_and_order_free(rng):
    w = rng.normal(0, 0.1, 5000).astype(np.float32)
    for init in sharing.INITS:
        a = sharing.share(w, 4, init=init, seed=7)
        b = sharing.share(w, 4, init=init, seed=7)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
        perm = rng.permutation(w.size)                     # the same values in another layout
        c = sharing.share(w[perm], 4, init=init, seed=7)
        assert np.array_equal(a[0], c[0]) and np.array_equal(a[1][perm], c[1])


def test_bad_bits_and_inputs():
    for bits in (0, 9, 2.5, True, "5"):
        with pytest.raises(ValueError, match=r"bits must be an integer in \[1, 8\]"):
            sharing.share(np.ones(4, np.float32), bits)
    with pytest.raises(TypeError, match="floating-point"):
        sharing.share(np.arange(4), 2)
    with pytest.raises(ValueError, match="finite"):
        sharing.kmeans_1d(np.array([1.0, np.nan, 2.0]), 2)
    codebook, labels = sharing.share(np.zeros(5, np.float32), 3)
    assert codebook.size == 0 and (labels == -1).all()


def test_clusters_and_gradient_rule(rng):
    w = sharing.shared_weights(rng.normal(0, 1, 200).astype(np.float32), 3)
    w[:50] = 0
    codebook, labels = sharing.clusters(w)
    assert np.array_equal(sharing.reconstruct(codebook, labels), w)
    g = rng.normal(size=200)
    cg = sharing.cluster_gradient(g, labels, codebook.size)
    for j in range(codebook.size):
        assert np.isclose(cg[j], g[labels == j].sum())
