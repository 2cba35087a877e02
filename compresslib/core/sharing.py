"""Weight sharing by k-means (Han et al. 2016, "Deep Compression"), in NumPy, for both backends.

A layer's non-zero weights are clustered into at most ``2**bits`` groups; every
weight is replaced by its group's centroid, so the layer holds only the
codebook values (and its pruned zeros, which are never a cluster and stay
exactly ``+0.0``). Stored as a codebook plus ``bits``-bit indices, the layer
shrinks from 32 to about ``bits`` bits per weight (``compresslib.core.encodings.entropy``).

The k-means is one-dimensional, so it is computed on the *sorted* weights:
with sorted centroids every cluster is a contiguous run of the sorted values,
cut at the midpoints between neighbouring centroids. One Lloyd iteration is
then a ``searchsorted`` for the cuts and differences of one cumulative sum for
the means — ``O(k log n)`` after an ``O(n log n)`` sort — and the iterations
stop when the cuts no longer move. The result is exactly what Lloyd's
algorithm gives from the same initial centroids (scikit-learn's ``KMeans``
with ``algorithm="lloyd"`` serves as the reference in the tests), only much
faster. Initialisations (Han et al., section 3.2):

* ``"linear"`` (the paper's default): centroids evenly spaced between the
  smallest and the largest weight; keeps the rare large weights, which matter most;
* ``"density"``: centroids at evenly spaced quantiles (the CDF cut evenly on its y axis);
* ``"random"`` (Forgy): ``k`` distinct weights drawn with ``seed``.

An empty cluster keeps its centroid; clusters still empty at the end are
dropped, so the codebook holds only centroids in use (sorted ascending).

Example:
    >>> import numpy as np
    >>> w = np.array([0.0, -1.0, -0.9, 0.1, 0.12, 1.0, 0.0], dtype=np.float32)
    >>> codebook, labels = share(w, bits=2)
    >>> codebook.tolist() == np.float32([-0.95, 0.11, 1.0]).tolist(), labels.tolist()
    (True, [-1, 0, 0, 1, 1, 2, -1])
    >>> shared_weights(w, bits=2).tolist() == np.float32([0, -0.95, -0.95, 0.11, 0.11, 1, 0]).tolist()
    True
"""
from __future__ import annotations

from typing import Optional

import numpy as np

INITS = ("linear", "density", "random")
MAX_BITS = 8


def check_bits(bits: object, argument: str = "bits") -> int:
    """``bits`` as an int in 1..8, or a ``ValueError`` naming ``argument``."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= int(bits) <= MAX_BITS:
        raise ValueError(f"{argument} must be an integer in [1, {MAX_BITS}], got {bits!r}")
    return int(bits)


def initial_centroids(sorted_values: np.ndarray, k: int, init: str = "linear", seed: int = 0) -> np.ndarray:
    """``k`` sorted starting centroids for :func:`kmeans_1d` (``sorted_values`` ascending, float64).

    Example:
        >>> initial_centroids(np.array([0.0, 1.0, 2.0, 10.0]), 3).tolist()
        [0.0, 5.0, 10.0]
        >>> initial_centroids(np.array([0.0, 1.0, 2.0, 10.0]), 2, "density").tolist()
        [0.75, 4.0]
    """
    if init not in INITS:
        raise ValueError(f"init must be one of {INITS}, got {init!r}")
    x = sorted_values
    if init == "linear":
        return np.linspace(x[0], x[-1], k)
    if init == "density":
        return np.quantile(x, (np.arange(k) + 0.5) / k)
    distinct = np.unique(x)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(distinct, size=min(k, distinct.size), replace=False))


def kmeans_1d(values: np.ndarray, k: int, init: str = "linear", seed: int = 0,
              max_iter: int = 300, centroids: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on a 1-D array, exact and vectorised on the sorted values.

    Args:
        values: the numbers to cluster (any shape, flattened; finite).
        k: the most clusters (>= 1).
        init: ``"linear"``, ``"density"`` or ``"random"`` (see the module docstring).
        seed: for ``init="random"``.
        max_iter: the most Lloyd iterations (they usually stop far earlier, when no cut moves).
        centroids: explicit starting centroids (overrides ``init``).

    Returns:
        ``(centroids, labels)``: the centroids in use, ascending (float64), and for
        every value (in the input's flat order) the index of its centroid.

    Example:
        >>> c, l = kmeans_1d(np.array([1.0, 9.0, 2.0, 8.0, 1.5]), 2)
        >>> c.tolist(), l.tolist()
        ([1.5, 8.5], [0, 1, 0, 1, 0])
    """
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if x.size == 0:
        return np.zeros(0), np.zeros(0, dtype=np.int64)
    if not np.isfinite(x).all():
        raise ValueError("values must be finite (no NaN or infinity) to be clustered")
    order = np.argsort(x, kind="stable")
    xs = x[order]
    distinct = np.unique(xs)
    if distinct.size <= k:  # every distinct value is its own centroid: exact, nothing to iterate
        labels = np.searchsorted(distinct, x)
        return distinct, labels
    c = np.sort(np.asarray(centroids, dtype=np.float64).reshape(-1)) if centroids is not None else \
        initial_centroids(xs, k, init, seed)
    csum = np.concatenate([[0.0], np.cumsum(xs)])
    cuts = None
    for _ in range(max(1, int(max_iter))):
        # values <= the midpoint go to the lower centroid (Lloyd's argmin picks the first of a tie)
        new_cuts = np.concatenate([[0], np.searchsorted(xs, (c[:-1] + c[1:]) / 2, side="right"), [xs.size]])
        counts = np.diff(new_cuts)
        sums = csum[new_cuts[1:]] - csum[new_cuts[:-1]]
        c = np.where(counts > 0, sums / np.maximum(counts, 1), c)
        if cuts is not None and np.array_equal(cuts, new_cuts):
            break
        cuts = new_cuts
    counts = np.diff(cuts)
    used = counts > 0
    labels_sorted = np.repeat(np.arange(int(used.sum())), counts[used])
    labels = np.empty(x.size, dtype=np.int64)
    labels[order] = labels_sorted
    return c[used], labels


def share(weight: np.ndarray, bits: int, init: str = "linear", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster the non-zero entries of ``weight`` into at most ``2**bits`` centroids.

    Returns ``(codebook, labels)``: the centroids in ``weight``'s dtype, ascending
    and distinct, and an int16 array of ``weight``'s shape holding each entry's
    centroid index, ``-1`` where the weight is zero (pruned zeros are no cluster).

    Example:
        >>> cb, lab = share(np.array([[0.0, 0.5], [0.5, 2.0]], dtype=np.float32), bits=1)
        >>> cb.tolist(), lab.tolist()
        ([0.5, 2.0], [[-1, 0], [0, 1]])
    """
    bits = check_bits(bits)
    w = np.asarray(weight)
    if w.dtype.kind != "f":
        raise TypeError(f"weight must be a floating-point array, got dtype {w.dtype}")
    flat = w.reshape(-1)
    nonzero = flat != 0
    labels = np.full(flat.size, -1, dtype=np.int16)
    if not nonzero.any():
        return np.zeros(0, dtype=w.dtype), labels.reshape(w.shape)
    centroids, lab = kmeans_1d(flat[nonzero], 2 ** bits, init=init, seed=seed)
    # in the weight's own precision two centroids may coincide: merge them (the codebook stays distinct)
    codebook, remap = np.unique(centroids.astype(w.dtype), return_inverse=True)
    labels[nonzero] = remap.reshape(-1)[lab]
    if (codebook == 0).any():  # a centroid that rounds to 0 makes its weights pruned zeros
        zero = int(np.flatnonzero(codebook == 0)[0])
        labels[labels == zero] = -1
        labels[labels > zero] -= 1
        codebook = np.delete(codebook, zero)
    return codebook, labels.reshape(w.shape)


def reconstruct(codebook: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The shared weights: ``codebook[labels]``, and ``+0.0`` where ``labels == -1``."""
    codebook = np.asarray(codebook)
    out = np.zeros(np.shape(labels), dtype=codebook.dtype if codebook.size else np.float32)
    keep = labels >= 0
    out[keep] = codebook[labels[keep]]
    return out


def shared_weights(weight: np.ndarray, bits: int, init: str = "linear", seed: int = 0) -> np.ndarray:
    """``weight`` with every non-zero entry replaced by its k-means centroid (same shape and dtype)."""
    codebook, labels = share(weight, bits, init, seed)
    return reconstruct(codebook, labels).astype(np.asarray(weight).dtype, copy=False)


def clusters(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The clusters of a shared tensor, read from its values: ``(codebook, labels)`` as :func:`share` returns.

    Every distinct non-zero value is one centroid; zeros get label ``-1``. Used
    by centroid fine-tuning, which needs no record of how the weights were shared.

    Example:
        >>> cb, lab = clusters(np.array([0.5, 0.0, -1.0, 0.5], dtype=np.float32))
        >>> cb.tolist(), lab.tolist()
        ([-1.0, 0.5], [1, -1, 0, 1])
    """
    flat = np.asarray(weight).reshape(-1)
    nonzero = flat != 0
    codebook, inverse = np.unique(flat[nonzero], return_inverse=True)
    labels = np.full(flat.size, -1, dtype=np.int64)
    labels[nonzero] = inverse.reshape(-1)
    return codebook, labels.reshape(np.shape(weight))


def cluster_gradient(grad: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """The paper's centroid gradient: for each cluster, the sum of its weights' gradients.

    ``dL/dc_k = sum over weights i in cluster k of dL/dW_i`` (zeros, label ``-1``, contribute nothing).

    Example:
        >>> cluster_gradient(np.array([1.0, 2.0, 3.0, 4.0]), np.array([0, 1, 0, -1]), 2).tolist()
        [4.0, 2.0]
    """
    labels = np.asarray(labels).reshape(-1)
    keep = labels >= 0
    return np.bincount(labels[keep], weights=np.asarray(grad, dtype=np.float64).reshape(-1)[keep], minlength=k)


__all__ = ["INITS", "MAX_BITS", "check_bits", "initial_centroids", "kmeans_1d", "share", "reconstruct",
           "shared_weights", "clusters", "cluster_gradient"]
