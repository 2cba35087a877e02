"""Pruning masks in NumPy, written once and used by both backends.

All functions take weights in *output-major* layout: axis 0 indexes output
channels/neurons, the rest is the reduction (fan-in) in PyTorch order. The
backends convert: a PyTorch ``Linear``/``Conv2d`` weight is already
output-major; a Keras ``Dense`` kernel ``(in, out)`` is transposed and a
``Conv2D`` kernel ``(kh, kw, in, out)`` is moved to ``(out, in, kh, kw)``.
With the same weights both frameworks therefore get the same masks.

Ties are broken deterministically (a stable sort: the earlier element is
pruned first), so the same weights always give the same mask.

Example:
    >>> import numpy as np
    >>> w = np.array([[0.1, -3.0, 0.5, 2.0]], dtype=np.float32)
    >>> magnitude_mask(w, 0.5).astype(int)
    array([[0, 1, 0, 1]])
    >>> nm_mask(w, n=2, m=4).astype(int)
    array([[0, 1, 0, 1]])
"""
from __future__ import annotations

import warnings
from typing import Any, Optional, Sequence

import numpy as np

from compresslib.core import checks


def _check_sparsity(sparsity: float, argument: str = "sparsity") -> float:
    return checks.sparsity(sparsity, argument)


check_sparsity = _check_sparsity


def n_to_prune(size: int, sparsity: float) -> int:
    """How many of ``size`` weights a ``sparsity`` removes: ``round(sparsity * size)``."""
    return int(round(_check_sparsity(sparsity) * size))


def _mask_from_scores(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask keeping all but the ``k`` smallest scores (stable: ties prune the earlier one)."""
    flat = scores.ravel()
    mask = np.ones(flat.size, dtype=bool)
    if k > 0:
        mask[np.argsort(flat, kind="stable")[:k]] = False
    return mask.reshape(scores.shape)


def magnitude_mask(weight: np.ndarray, sparsity: float) -> np.ndarray:
    """Keep the largest-magnitude weights; exactly ``round(sparsity * size)`` become False.

    Example:
        >>> magnitude_mask(np.array([3.0, -1.0, 2.0, 0.5]), 0.5)
        array([ True, False,  True, False])
    """
    weight = np.asarray(weight)
    return _mask_from_scores(np.abs(weight.astype(np.float64)), n_to_prune(weight.size, sparsity))


def global_magnitude_masks(weights: Sequence[np.ndarray], sparsity: float) -> list[np.ndarray]:
    """One threshold over all ``weights`` together: exactly ``round(sparsity * total)`` weights pruned.

    Layers are concatenated in the given order (flattened C-order), so the
    tie-break is reproducible.

    Example:
        >>> a, b = np.array([1.0, 2.0]), np.array([10.0, 20.0, 0.1])
        >>> [m.astype(int).tolist() for m in global_magnitude_masks([a, b], 0.4)]
        [[0, 1], [1, 1, 0]]
    """
    weights = [np.asarray(w) for w in weights]
    if not weights:
        return []
    flat = np.concatenate([np.abs(w.astype(np.float64)).ravel() for w in weights])
    mask = _mask_from_scores(flat, n_to_prune(flat.size, sparsity))
    out, start = [], 0
    for w in weights:
        out.append(mask[start:start + w.size].reshape(w.shape))
        start += w.size
    return out


def nm_mask(weight: np.ndarray, n: int = 2, m: int = 4) -> np.ndarray:
    """N:M mask: in each group of ``m`` consecutive fan-in weights of an output, keep the ``n`` largest.

    ``weight`` is output-major; its fan-in (all axes but the first, flattened)
    must be a multiple of ``m``, otherwise ``ValueError``.

    Example:
        >>> nm_mask(np.array([[1.0, 4.0, 3.0, 2.0, 0.0, 0.0, 5.0, -6.0]]), 2, 4).astype(int)
        array([[0, 1, 1, 0, 0, 0, 1, 1]])
    """
    if not (isinstance(n, int) and isinstance(m, int) and 1 <= n < m):
        raise ValueError(f"n and m must be integers with 1 <= n < m, got n={n!r}, m={m!r}")
    weight = np.asarray(weight)
    if weight.ndim < 2:
        raise ValueError(f"weight must be output-major with at least 2 dimensions, got shape {weight.shape}")
    fan_in = int(np.prod(weight.shape[1:]))
    if fan_in % m:
        raise ValueError(f"weight: fan-in {fan_in} is not a multiple of m={m}")
    groups = np.abs(weight.astype(np.float64)).reshape(weight.shape[0], fan_in // m, m)
    order = np.argsort(groups, axis=-1, kind="stable")  # ascending; the first m-n are pruned
    mask = np.ones_like(groups, dtype=bool)
    np.put_along_axis(mask, order[..., : m - n], False, axis=-1)
    return mask.reshape(weight.shape)


def is_nm_sparse(weight: np.ndarray, n: int = 2, m: int = 4) -> bool:
    """True when every group of ``m`` consecutive fan-in weights holds at most ``n`` non-zeros."""
    weight = np.asarray(weight)
    fan_in = int(np.prod(weight.shape[1:]))
    if fan_in % m:
        return False
    return bool((np.count_nonzero(weight.reshape(weight.shape[0], -1, m), axis=-1) <= n).all())


# --------------------------------------------------------------------------- channels
IMPORTANCES = ("l1", "l2", "random")


def channel_scores(weight: np.ndarray, importance: str = "l1", rng: Optional[np.random.Generator] = None) -> np.ndarray:
    """Importance of each output channel of an output-major ``weight``: L1 or L2 norm, or random.

    Example:
        >>> channel_scores(np.array([[1.0, -2.0], [0.5, 0.5]]), "l1")
        array([3., 1.])
    """
    if importance not in IMPORTANCES:
        raise ValueError(f"importance must be one of {IMPORTANCES}, got {importance!r}")
    w = np.asarray(weight, dtype=np.float64).reshape(np.shape(weight)[0], -1)
    if importance == "l1":
        return np.abs(w).sum(1)
    if importance == "l2":
        return np.sqrt((w * w).sum(1))
    rng = rng if rng is not None else np.random.default_rng(0)
    return rng.random(w.shape[0])


def n_channels_kept(channels: int, ratio: float) -> int:
    """Channels left after removing a ``ratio``: ``int(channels * (1 - ratio))`` (Torch-Pruning's rule)."""
    ok = isinstance(ratio, (int, float, np.floating)) and not isinstance(ratio, bool)
    if not ok or not 0.0 <= float(ratio) < 1.0:
        raise ValueError(f"ratio must be in [0, 1), got {ratio!r}")
    return int(channels * (1 - float(ratio)))


def channels_to_keep(scores: np.ndarray, ratio: float, name: str = "layer") -> np.ndarray:
    """Sorted indices of the channels kept when the lowest-scoring ``ratio`` is removed.

    Raises ``ValueError`` naming ``name`` when the ratio would remove every channel.

    Example:
        >>> channels_to_keep(np.array([0.3, 0.1, 0.9, 0.2]), 0.5)
        array([0, 2])
    """
    scores = np.asarray(scores, dtype=np.float64).ravel()
    keep = n_channels_kept(scores.size, ratio)
    if keep < 1:
        raise ValueError(f"ratio={ratio} would remove every one of the {scores.size} channels of {name}; "
                         "use a smaller ratio or leave that layer out")
    order = np.argsort(scores, kind="stable")
    return np.sort(order[scores.size - keep:])


def group_scores(weights: Sequence[np.ndarray], importance: str, rng: np.random.Generator,
                 channels: Optional[int] = None) -> np.ndarray:
    """Scores of the channels shared by a coupled group (e.g. convs joined by a residual add).

    ``weights``: each member's output-major weight rows for the group's channels. L1
    scores add up; L2 scores add in squares (the norm of the concatenated rows);
    ``"random"`` draws one score per channel from ``rng``.

    Example:
        >>> w = np.array([[1.0, -2.0], [0.5, 0.5]])
        >>> group_scores([w, w], "l1", np.random.default_rng(0))
        array([6., 2.])
    """
    if importance not in IMPORTANCES:
        raise ValueError(f"importance must be one of {IMPORTANCES}, got {importance!r}")
    n = channels if channels is not None else int(np.shape(weights[0])[0])
    if importance == "random":
        return rng.random(n)
    if importance == "l2":
        return np.sqrt(sum(channel_scores(w, "l2") ** 2 for w in weights))
    return sum(channel_scores(w, "l1") for w in weights)


def masks_for(config: Any, weights: dict[str, np.ndarray], sparsity: Optional[float] = None,
              warn: bool = True) -> dict[str, np.ndarray]:
    """Boolean masks for a ``Magnitude`` or ``NM`` config over output-major ``weights`` (``{name: array}``).

    ``config`` is read by its fields (core does not import the configs): one with ``n`` and ``m``
    is N:M, one with ``sparsity`` and ``scope`` is magnitude pruning.

    ``sparsity`` overrides ``Magnitude.sparsity`` (gradual pruning). ``NM`` skips
    layers whose fan-in is not a multiple of ``m`` and names them in one warning.

    Example:
        >>> from compresslib.configs import Magnitude
        >>> m = masks_for(Magnitude(0.5), {"fc": np.array([[0.1, -3.0, 0.5, 2.0]])})
        >>> m["fc"].astype(int)
        array([[0, 1, 0, 1]])
    """
    if hasattr(config, "sparsity") and hasattr(config, "scope"):
        s = config.sparsity if sparsity is None else sparsity
        arrays = list(weights.values())
        found = (global_magnitude_masks(arrays, s) if config.scope == "global"
                 else [magnitude_mask(a, s) for a in arrays])
        return dict(zip(weights, found))
    if hasattr(config, "n") and hasattr(config, "m"):
        out, skipped = {}, []
        for name, w in weights.items():
            fan_in = int(np.prod(np.shape(w)[1:]))
            if fan_in % config.m:
                skipped.append(f"{name} (fan-in {fan_in})")
                continue
            out[name] = nm_mask(w, config.n, config.m)
        if skipped and warn:
            warnings.warn(f"NM({config.n}:{config.m}) skipped layers whose fan-in is not a multiple of "
                          f"{config.m}: {', '.join(skipped)}", UserWarning, stacklevel=3)
        return out
    raise TypeError(f"config must be Magnitude or NM for masks, got {type(config).__name__}")


# --------------------------------------------------------------------------- accounting
def sparsity(array: np.ndarray) -> float:
    """Fraction of exact zeros in ``array`` (0 for an empty array)."""
    array = np.asarray(array)
    return 0.0 if array.size == 0 else 1.0 - np.count_nonzero(array) / array.size


def sparsity_summary(named: dict[str, np.ndarray]) -> dict:
    """Per-tensor and total counts: ``{"layers": {name: (size, zeros, sparsity)}, "size", "zeros", "sparsity"}``."""
    layers, total, zeros = {}, 0, 0
    for name, a in named.items():
        a = np.asarray(a)
        z = int(a.size - np.count_nonzero(a))
        layers[name] = (int(a.size), z, z / a.size if a.size else 0.0)
        total, zeros = total + a.size, zeros + z
    return {"layers": layers, "size": int(total), "zeros": int(zeros), "sparsity": zeros / total if total else 0.0}


__all__ = ["magnitude_mask", "global_magnitude_masks", "nm_mask", "is_nm_sparse", "channel_scores",
           "channels_to_keep", "n_channels_kept", "group_scores", "masks_for", "check_sparsity", "n_to_prune", "sparsity", "sparsity_summary", "IMPORTANCES"]
