"""Low-rank factorisation of layer weights, NumPy only: truncated SVD, Tucker-2, CP, rank rules.

Both backends (``compresslib/torch/lowrank.py`` and ``compresslib/keras/lowrank.py``)
call these functions on NumPy copies of the weights and only lay the factors
out as their own layers. Weights use one convention here:

* a dense layer is a matrix ``W`` of shape ``(m, n) = (out, in)``, ``y = W x``;
* a convolution kernel is ``(C_out, C_in, kh, kw)`` ("OIHW", PyTorch's layout;
  the Keras backend transposes its HWIO kernels on the way in and out).

The cost rule (written here, not in a library): a dense ``m×n`` layer factored
at rank ``r`` costs ``r(m + n)`` weights instead of ``mn``; a Tucker-2 conv costs
``C_in·R1 + R1·R2·kh·kw + R2·C_out`` instead of ``C_out·C_in·kh·kw`` (a mode kept at full
rank, ``R1 = C_in`` or ``R2 = C_out``, is absorbed into the core and its term dropped:
Tucker-1, one 1×1 convolution fewer; see :func:`absorb_full_modes`); CP of rank
``R`` costs ``R(C_in + kh + kw + C_out)``. :func:`plan_svd`, :func:`plan_tucker`
and :func:`plan_cp` refuse any rank whose factors would not be strictly smaller
than the layer, and say so in the returned :class:`Plan`.

Tucker-2 (Kim et al. 2016, "Compression of Deep Convolutional Neural Networks
for Fast and Low Power Mobile Applications") and CP (Lebedev et al. 2015,
"Speeding-up Convolutional Neural Networks Using Fine-tuned CP-Decomposition")
are computed with TensorLy's ``partial_tucker`` and ``parafac`` on the NumPy
backend; SVD uses ``numpy.linalg.svd``.

Example:
    >>> import numpy as np
    >>> w = np.random.default_rng(0).normal(size=(64, 32))
    >>> p = plan_svd(w.shape, rank=8)
    >>> p.rank, p.params_before, p.params_after, p.accepted
    (8, 2048, 768, True)
    >>> plan_svd((10, 64), rank=9).accepted    # 9·(10+64) = 666 > 640: refused
    False
    >>> a, b = svd_factors(w, 32)              # full rank: exact
    >>> bool(np.allclose(a @ b, w))
    True
"""
from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

import numpy as np

from compresslib.core import checks
from compresslib.core.blas import one_thread


_blas_threads = one_thread  # LAPACK on one thread (see compresslib.core.blas)


# --------------------------------------------------------------------------- costs


def svd_cost(m: int, n: int, rank: int) -> int:
    """Weights of an ``m×n`` matrix stored as two factors of rank ``rank``: ``rank·(m + n)``."""
    return int(rank) * (int(m) + int(n))


def tucker_cost(c_out: int, c_in: int, kh: int, kw: int, r1: int, r2: int) -> int:
    """Weights of a Tucker-2 conv: ``C_in·R1 + R1·R2·kh·kw + R2·C_out`` (1×1, k×k, 1×1).

    A full-rank mode (``R1 = C_in`` or ``R2 = C_out``) has no 1×1 factor (it is
    absorbed into the core), so its term is left out:

    >>> tucker_cost(16, 16, 3, 3, 8, 8), tucker_cost(16, 16, 3, 3, 8, 16)   # 128+576+128; 128+1152
    (832, 1280)
    """
    r1, r2 = int(r1), int(r2)
    first = 0 if r1 == int(c_in) else int(c_in) * r1
    last = 0 if r2 == int(c_out) else r2 * int(c_out)
    return first + r1 * r2 * int(kh) * int(kw) + last


def cp_cost(c_out: int, c_in: int, kh: int, kw: int, rank: int) -> int:
    """Weights of a rank-``R`` CP conv: ``R·(C_in + kh + kw + C_out)`` (1×1, kh×1, 1×kw, 1×1)."""
    return int(rank) * (int(c_in) + int(kh) + int(kw) + int(c_out))


def max_useful_svd_rank(m: int, n: int) -> int:
    """The largest rank whose factors are strictly smaller than the ``m×n`` matrix (0 if none).

    >>> max_useful_svd_rank(1024, 1024), max_useful_svd_rank(10, 1024)
    (511, 9)
    """
    return max(0, (m * n - 1) // (m + n))


# --------------------------------------------------------------------------- rank rules


def energy_rank(singular_values: np.ndarray, energy: float) -> int:
    """Smallest ``r`` whose first ``r`` singular values keep ``energy`` of ``sum(s²)``.

    >>> energy_rank(np.array([3.0, 2.0, 1.0]), 0.9)   # 9/14 = 0.64, 13/14 = 0.93
    2
    """
    _check_energy(energy)
    s2 = np.asarray(singular_values, dtype=np.float64) ** 2
    total = s2.sum()
    if total == 0:
        return 1
    kept = np.cumsum(s2) / total
    return int(min(len(s2), np.searchsorted(kept, energy - 1e-12) + 1))


def _check_energy(energy: float) -> None:
    checks.fraction("energy", energy, low_open=True, high_open=False)


def _check_rank(rank: int, limit: int, what: str, argument: str = "rank") -> None:
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"{argument} must be a positive integer, got {rank!r}")
    if rank > limit:
        raise ValueError(f"{argument}={rank} exceeds {what}'s size: allowed 1..{limit}")


def singular_values(w: np.ndarray) -> np.ndarray:
    """Singular values of a matrix, or of each mode unfolding's ``(mode0, mode1)`` pair for a 4-D kernel.

    For a conv kernel ``(C_out, C_in, kh, kw)`` returns the tuple of the
    singular values of its mode-0 and mode-1 unfoldings (what Tucker-2 truncates).
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim == 2:
        with _blas_threads():
            return np.linalg.svd(w, compute_uv=False)
    if w.ndim == 4:
        with _blas_threads():
            s_out = np.linalg.svd(w.reshape(w.shape[0], -1), compute_uv=False)
            s_in = np.linalg.svd(np.moveaxis(w, 1, 0).reshape(w.shape[1], -1), compute_uv=False)
        return s_out, s_in
    raise ValueError(f"w must be a 2-D matrix or a 4-D conv kernel, got shape {w.shape}")


@dataclass(frozen=True)
class Plan:
    """What decomposing one layer would do: ranks, weights before and after, and whether it pays.

    ``accepted`` is False when the factors would not be strictly smaller than
    the layer; ``reason`` then says why (the backends skip such layers with a warning).
    """

    kind: str                 # "svd" | "tucker" | "cp"
    shape: tuple
    rank: tuple | int
    params_before: int
    params_after: int
    accepted: bool
    reason: str = ""

    @property
    def ratio(self) -> float:
        """params_before / params_after (> 1 means fewer weights)."""
        return self.params_before / self.params_after


def plan_svd(shape: Sequence[int], rank: Optional[int] = None, energy: Optional[float] = None,
             ratio: Optional[float] = None, w: Optional[np.ndarray] = None) -> Plan:
    """Choose the SVD rank of an ``(m, n)`` matrix: fixed ``rank``, ``energy`` kept (needs ``w``),
    or ``ratio`` = the share of the layer's weights the factors may use (``r = ⌊ratio·mn/(m+n)⌋``).

    >>> plan_svd((1024, 1024), ratio=0.25).rank
    128
    >>> plan_svd((64, 32), rank=40)
    Traceback (most recent call last):
    ...
    ValueError: rank=40 exceeds the 64×32 matrix's size: allowed 1..32
    """
    m, n = (int(d) for d in shape)
    checks.exactly_one("plan_svd", rank=rank, energy=energy, ratio=ratio)
    limit = min(m, n)
    if rank is not None:
        _check_rank(rank, limit, f"the {m}×{n} matrix")
        r = int(rank)
    elif energy is not None:
        if w is None:
            raise ValueError("energy needs the weights w")
        r = energy_rank(singular_values(w), energy)
    else:
        checks.fraction("ratio", ratio, low_open=True, high_open=False)
        r = max(1, min(limit, int(ratio * m * n // (m + n))))
    before, after = m * n, svd_cost(m, n, r)
    ok = after < before
    reason = "" if ok else (f"rank {r} costs {r}·({m}+{n}) = {after} weights ≥ {before} of the {m}×{n} "
                            f"matrix (useful ranks: 1..{max_useful_svd_rank(m, n)})")
    return Plan("svd", (m, n), r, before, after, ok, reason)


def plan_tucker(shape: Sequence[int], ranks: Optional[Sequence[int]] = None, energy: Optional[float] = None,
                w: Optional[np.ndarray] = None) -> Plan:
    """Choose Tucker-2 ranks ``(R1, R2)`` (input, output modes) of a ``(C_out, C_in, kh, kw)`` kernel.

    With ``energy`` each rank keeps that share of its mode unfolding's squared
    singular values (needs ``w``).

    >>> p = plan_tucker((64, 32, 3, 3), ranks=(16, 32))
    >>> p.rank, p.params_before, p.params_after, p.accepted
    ((16, 32), 18432, 7168, True)
    """
    c_out, c_in, kh, kw = (int(d) for d in shape)
    checks.exactly_one("plan_tucker", ranks=ranks, energy=energy)
    if ranks is not None:
        ranks = tuple(ranks)
        if len(ranks) != 2:
            raise ValueError(f"ranks must be a pair (R1, R2), got {ranks!r}")
        _check_rank(ranks[0], c_in, f"the kernel's input mode (C_in={c_in})", "ranks[0] (R1)")
        _check_rank(ranks[1], c_out, f"the kernel's output mode (C_out={c_out})", "ranks[1] (R2)")
        r1, r2 = int(ranks[0]), int(ranks[1])
    else:
        _check_energy(energy)
        if w is None:
            raise ValueError("energy needs the weights w")
        s_out, s_in = singular_values(w)
        r1, r2 = energy_rank(s_in, energy), energy_rank(s_out, energy)
    before, after = c_out * c_in * kh * kw, tucker_cost(c_out, c_in, kh, kw, r1, r2)
    ok = after < before
    terms = ([f"{c_in}·{r1}"] if r1 != c_in else []) + [f"{r1}·{r2}·{kh}·{kw}"] + \
        ([f"{r2}·{c_out}"] if r2 != c_out else [])
    reason = "" if ok else (f"ranks ({r1}, {r2}) cost {' + '.join(terms)} = {after} "
                            f"weights ≥ {before} of the kernel")
    return Plan("tucker", (c_out, c_in, kh, kw), (r1, r2), before, after, ok, reason)


def plan_cp(shape: Sequence[int], rank: int) -> Plan:
    """Check a CP rank for a ``(C_out, C_in, kh, kw)`` kernel against the cost rule.

    >>> plan_cp((16, 6, 5, 5), rank=8).params_after    # 8·(6+5+5+16)
    256
    """
    c_out, c_in, kh, kw = (int(d) for d in shape)
    _check_rank(rank, c_out * c_in * kh * kw, "the kernel")
    before, after = c_out * c_in * kh * kw, cp_cost(c_out, c_in, kh, kw, int(rank))
    ok = after < before
    reason = "" if ok else (f"rank {rank} costs {rank}·({c_in}+{kh}+{kw}+{c_out}) = {after} weights ≥ {before} "
                            "of the kernel")
    return Plan("cp", (c_out, c_in, kh, kw), int(rank), before, after, ok, reason)


# --------------------------------------------------------------------------- factorisations


def svd_factors(w: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Truncated SVD ``W ≈ A @ B`` with ``A`` (m×r) = ``U_r·√S_r`` and ``B`` (r×n) = ``√S_r·V_rᵀ``.

    Splitting √S between the factors keeps both at the same scale (kinder to
    fine-tuning and to int8 quantization afterwards). By Eckart–Young this is
    the best rank-``r`` approximation in Frobenius norm.
    """
    w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"w must be a 2-D matrix, got shape {w.shape}")
    _check_rank(rank, min(w.shape), f"the {w.shape[0]}×{w.shape[1]} matrix")
    with _blas_threads():
        u, s, vt = np.linalg.svd(w, full_matrices=False)
    root = np.sqrt(s[:rank])
    return u[:, :rank] * root, root[:, None] * vt[:rank]


def svd_error(w: np.ndarray, rank: int) -> float:
    """Relative Frobenius error ``‖W − W_r‖ / ‖W‖`` of the rank-``r`` truncation (from the spectrum)."""
    s = singular_values(w)
    total = float(np.sum(s ** 2))
    return float(np.sqrt(np.sum(s[rank:] ** 2) / total)) if total else 0.0


def tucker2(kernel: np.ndarray, ranks: Sequence[int], n_iter_max: int = 100) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tucker-2 of a ``(C_out, C_in, kh, kw)`` kernel with TensorLy's ``partial_tucker`` (HOOI from HOSVD).

    Returns ``(first, core, last)``: ``first`` (R1, C_in) is the 1×1 conv
    C_in→R1, ``core`` (R2, R1, kh, kw) the k×k conv, ``last`` (C_out, R2) the
    1×1 conv R2→C_out, so that ``kernel ≈ core ×₀ last ×₁ firstᵀ``.
    """
    import tensorly as tl
    from tensorly.decomposition import partial_tucker

    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D (C_out, C_in, kh, kw), got shape {kernel.shape}")
    r1, r2 = (int(r) for r in ranks)
    _check_rank(r1, kernel.shape[1], f"the kernel's input mode (C_in={kernel.shape[1]})", "ranks[0] (R1)")
    _check_rank(r2, kernel.shape[0], f"the kernel's output mode (C_out={kernel.shape[0]})", "ranks[1] (R2)")
    with tl.backend_context("numpy"), _blas_threads():
        (core, (u_out, u_in)), _ = partial_tucker(kernel, rank=[r2, r1], modes=[0, 1], init="svd",
                                                   n_iter_max=n_iter_max)
    return np.asarray(u_in).T, np.asarray(core), np.asarray(u_out)


def tucker2_reconstruct(first: Optional[np.ndarray], core: np.ndarray, last: Optional[np.ndarray]) -> np.ndarray:
    """The kernel the three Tucker-2 factors stand for: ``Σ last[o,b]·core[b,a,:,:]·first[a,i]``
    (a factor given as ``None`` was absorbed into the core)."""
    if first is not None:
        core = np.einsum("bahw,ai->bihw", core, first)
    if last is not None:
        core = np.einsum("ob,bihw->oihw", last, core)
    return core


def absorb_full_modes(first: np.ndarray, core: np.ndarray,
                      last: np.ndarray) -> tuple[Optional[np.ndarray], np.ndarray, Optional[np.ndarray]]:
    """Fold a square (full-rank) Tucker-2 factor into the core; ``None`` stands for the factor removed.

    With ``R1 = C_in`` the 1×1 convolution C_in→R1 only rotates the channels, so the
    core absorbs it (``core·first``: a k×k convolution straight from C_in) and the
    layer becomes Tucker-1, 1×1 convolution one fewer; the same for ``R2 = C_out``.
    The kernel they stand for is unchanged.

    >>> rng = np.random.default_rng(0)
    >>> f, c, l = rng.normal(size=(4, 4)), rng.normal(size=(3, 4, 3, 3)), rng.normal(size=(8, 3))
    >>> f2, c2, l2 = absorb_full_modes(f, c, l)
    >>> f2 is None, c2.shape, l2.shape
    (True, (3, 4, 3, 3), (8, 3))
    >>> bool(np.allclose(tucker2_reconstruct(f2, c2, l2), tucker2_reconstruct(f, c, l)))
    True
    """
    if first.shape[0] == first.shape[1]:
        core, first = tucker2_reconstruct(first, core, None), None
    if last.shape[0] == last.shape[1]:
        core, last = tucker2_reconstruct(None, core, last), None
    return first, core, last


def cp(kernel: np.ndarray, rank: int, n_iter_max: int = 100, seed: int = 0, tol: float = 1e-7) -> tuple[np.ndarray, ...]:
    """Rank-``R`` CP of a ``(C_out, C_in, kh, kw)`` kernel with TensorLy's ``parafac`` (ALS, SVD init).

    Returns ``(first, vertical, horizontal, last)``: ``first`` (R, C_in) is the
    1×1 conv C_in→R, ``vertical`` (R, kh) and ``horizontal`` (R, kw) are the
    depthwise kh×1 and 1×kw convs, ``last`` (C_out, R) the 1×1 conv R→C_out
    (the CP weights are folded into ``last``).
    """
    import tensorly as tl
    from tensorly.decomposition import parafac

    kernel = np.asarray(kernel, dtype=np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be 4-D (C_out, C_in, kh, kw), got shape {kernel.shape}")
    _check_rank(rank, int(np.prod(kernel.shape)), "the kernel")
    with tl.backend_context("numpy"), warnings.catch_warnings(), _blas_threads():
        # SVD init of a mode shorter than the rank (kh = 5 < R) pads with random columns; TensorLy warns.
        warnings.filterwarnings("ignore", message="Trying to compute SVD with n_eigenvecs")
        weights, (a_out, a_in, a_h, a_w) = parafac(kernel, rank=int(rank), init="svd", n_iter_max=n_iter_max,
                                                   random_state=seed, tol=tol)
    if not all(np.all(np.isfinite(f)) for f in (weights, a_out, a_in, a_h, a_w)):
        raise ValueError(f"rank={rank}: CP (ALS) diverged for this kernel; choose a smaller rank")
    return (np.asarray(a_in).T, np.asarray(a_h).T, np.asarray(a_w).T,
            np.asarray(a_out) * np.asarray(weights)[None, :])


def cp_reconstruct(first: np.ndarray, vertical: np.ndarray, horizontal: np.ndarray, last: np.ndarray) -> np.ndarray:
    """The kernel the four CP factors stand for: ``Σ_r last[o,r]·first[r,i]·vertical[r,h]·horizontal[r,w]``."""
    return np.einsum("or,ri,rh,rw->oihw", last, first, vertical, horizontal)


def relative_error(approx: np.ndarray, exact: np.ndarray) -> float:
    """``‖approx − exact‖ / ‖exact‖`` (Frobenius)."""
    exact = np.asarray(exact, dtype=np.float64)
    norm = np.linalg.norm(exact)
    return float(np.linalg.norm(np.asarray(approx, dtype=np.float64) - exact) / norm) if norm else 0.0


# --------------------------------------------------------------------------- BatchNorm folding


def fold_bn(weight: np.ndarray, bias: Optional[np.ndarray], gamma: np.ndarray, beta: np.ndarray,
            mean: np.ndarray, var: np.ndarray, eps: float, out_axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fold an eval-mode BatchNorm into the layer before it.

    ``BN(Wx + b) = s·(Wx + b − μ) + β`` with ``s = γ/√(σ² + ε)``, so
    ``W' = s·W`` (along the output axis ``out_axis``) and ``b' = s·(b − μ) + β``.

    >>> w, b = fold_bn(np.ones((2, 3)), None, np.array([2., 1.]), np.array([0., 1.]),
    ...                np.array([0., 1.]), np.array([1., 1.]), eps=0.0)
    >>> w[:, 0].tolist(), b.tolist()
    ([2.0, 1.0], [0.0, 0.0])
    """
    weight = np.asarray(weight, dtype=np.float64)
    scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(np.asarray(var, dtype=np.float64) + eps)
    shape = [1] * weight.ndim
    shape[out_axis] = -1
    b = np.zeros_like(scale) if bias is None else np.asarray(bias, dtype=np.float64)
    return weight * scale.reshape(shape), scale * (b - np.asarray(mean, dtype=np.float64)) + np.asarray(beta)


# --------------------------------------------------------------------------- the workflow both backends share


def select_layers(layers_by_name: dict[str, Any], config: Any, layers: Any,
                  is_target: Callable[[Any], bool], why_not: Callable[[Any], str]) -> tuple[list[str], dict[str, str]]:
    """Names of the layers ``config`` would factor, and ``{name: reason}`` for those it must skip.

    ``layers``: None (every target layer), a name, a list of names, or ``fn(name, layer) -> bool``;
    ``is_target(layer)`` picks the candidates when no names are given, ``why_not(layer)`` says
    why a layer cannot be factored ('' when it can).

    Example:
        >>> select_layers({"a": 1, "b": 2.0}, None, None, lambda l: isinstance(l, int), lambda l: "")
        (['a'], {})
    """
    if layers is None or callable(layers):
        chosen = [n for n, l in layers_by_name.items() if is_target(l) and (layers is None or layers(n, l))]
    else:
        names = [layers] if isinstance(layers, str) else list(layers)
        unknown = [n for n in names if n not in layers_by_name]
        if unknown:
            raise ValueError(f"layers: no layer named {unknown} in the model; choose from {list(layers_by_name)}")
        chosen = names
    out, skipped = [], {}
    for n in chosen:
        why = why_not(layers_by_name[n])
        if why:
            skipped[n] = why
        else:
            out.append(n)
    return out, skipped


def plan_layer(config: Any, w: np.ndarray) -> Plan:
    """The plan of ``config`` (``SVD``, ``Tucker`` or ``CP``) for one weight in the core layout.

    ``config`` is read by its fields (core does not import the configs): ``ranks`` is Tucker,
    ``rank`` and ``ratio`` is SVD, ``rank`` alone is CP.

    Example:
        >>> from compresslib.configs import SVD
        >>> plan_layer(SVD(rank=8), np.ones((64, 32))).params_after
        768
    """
    if hasattr(config, "ranks"):
        return plan_tucker(w.shape, ranks=config.ranks, energy=config.energy, w=w)
    if hasattr(config, "ratio") and hasattr(config, "rank"):
        return plan_svd(w.shape, rank=config.rank, energy=config.energy, ratio=config.ratio, w=w)
    if hasattr(config, "rank"):
        return plan_cp(w.shape, config.rank)
    raise TypeError(f"config must be SVD, Tucker or CP, got {type(config).__name__}")


def plan_layers(config: Any, weights: dict[str, np.ndarray], explicit: bool) -> dict[str, Plan]:
    """:func:`plan_layer` for each weight; a rank invalid for a layer named explicitly raises, otherwise it
    becomes a refused plan whose ``reason`` says why."""
    out = {}
    for n, w in weights.items():
        try:
            out[n] = plan_layer(config, w)
        except ValueError as exc:
            if explicit:
                raise ValueError(f"layer {n!r}: {exc}") from None
            out[n] = Plan(type(config).__name__.lower(), tuple(w.shape),
                          getattr(config, "rank", None) or getattr(config, "ranks", None), int(w.size), int(w.size),
                          False, str(exc))
    return out


def warn_skipped(config: Any, skipped: dict[str, str]) -> None:
    """One warning naming every layer ``decompose`` left as it was, with the reason."""
    if skipped:
        warnings.warn(f"decompose({type(config).__name__}): left {len(skipped)} layer(s) unchanged: "
                      + "; ".join(f"{n}: {why}" for n, why in skipped.items()), UserWarning, stacklevel=4)
