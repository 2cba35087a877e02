"""Error bars for accuracies, and the paired test that decides whether two models differ.

Two models evaluated on the same test images are not independent samples: most images are right (or
wrong) for both. What decides whether one is better is the images on which they *disagree*. For a
difference between two accuracies measured on the same test set this module gives

* :func:`wilson_interval`: the 95 % interval of one accuracy (Wilson's score interval, which stays
  inside [0, 1] and is right near 100 %, unlike the ``p ± 1.96·se`` one);
* :func:`mcnemar_p`: McNemar's exact test — among the images where exactly one model is right, is
  one model right more often than a fair coin would be? (two-sided binomial test, as
  ``statsmodels``' ``mcnemar(exact=True)``);
* :func:`paired_interval`: the 95 % interval of the paired difference (b − a), from the
  discordant counts;
* :func:`paired`: all of it as a :class:`PairedResult`, with a verdict in words that a notebook can
  glue into prose ("within noise" unless the test rejects equality at the 5 % level).

NumPy and the standard library only.

Example:
    >>> import numpy as np
    >>> y = np.zeros(1000, dtype=int)
    >>> a = y.copy(); a[:20] = 1                 # a is wrong on 20 images
    >>> b = y.copy(); b[10:45] = 1               # b is wrong on 35, 10 of them shared with a
    >>> r = paired(y, a, b)
    >>> r.correct_a, r.correct_b, r.only_a, r.only_b
    (980, 965, 25, 10)
    >>> round(r.difference_pt, 2), round(r.p_value, 4), r.verdict
    (-1.5, 0.0167, 'lower')
    >>> [round(v, 4) for v in wilson_interval(980, 1000)]
    [0.9693, 0.987]
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

ALPHA = 0.05
CONFIDENCE = 0.95


def _z(confidence: float) -> float:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def _count(value: Any, argument: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{argument} must be an integer >= 0, got {value!r}")
    return int(value)


def wilson_interval(correct: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval for an accuracy of ``correct`` right out of ``total``.

    Example:
        >>> [round(v, 4) for v in wilson_interval(9300, 10000)]
        [0.9248, 0.9348]
    """
    k, n = _count(correct, "correct"), _count(total, "total")
    if n == 0 or k > n:
        raise ValueError(f"total must be >= 1 and >= correct, got correct={k}, total={n}")
    z = _z(confidence)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), summed in log space (exact enough for n in the millions)."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    logs = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - n * math.log(2) for i in range(k + 1)]
    top = max(logs)
    return min(1.0, math.exp(top) * sum(math.exp(v - top) for v in logs))


def mcnemar_p(only_a: int, only_b: int) -> float:
    """Exact two-sided McNemar p-value from the discordant counts.

    ``only_a``: images only model a gets right; ``only_b``: images only model b gets right.

    Example:
        >>> round(mcnemar_p(25, 10), 4), mcnemar_p(0, 0)
        (0.0167, 1.0)
    """
    n01, n10 = _count(only_a, "only_a"), _count(only_b, "only_b")
    n = n01 + n10
    if n == 0:
        return 1.0
    return min(1.0, 2.0 * _binom_cdf_half(min(n01, n10), n))


def paired_interval(only_a: int, only_b: int, total: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Interval of the paired difference accuracy(b) − accuracy(a), as a fraction.

    The Wald interval of a difference of paired proportions (only the discordant images carry
    information): ``d = (only_b − only_a) / n``, ``se = sqrt(only_a + only_b − (only_b − only_a)² / n) / n``.

    Example:
        >>> [round(v, 4) for v in paired_interval(25, 10, 1000)]
        [-0.0266, -0.0034]
    """
    n01, n10, n = _count(only_a, "only_a"), _count(only_b, "only_b"), _count(total, "total")
    if n == 0 or n01 + n10 > n:
        raise ValueError(f"total must be >= 1 and >= only_a + only_b, got {n01} + {n10} of {n}")
    d = (n10 - n01) / n
    se = math.sqrt(max(0.0, n01 + n10 - (n10 - n01) ** 2 / n)) / n
    z = _z(confidence)
    return d - z * se, d + z * se


def correctness(labels: Any, predictions: Any, argument: str = "predictions") -> np.ndarray:
    """Boolean per-sample correctness; ``predictions`` may be class indices or (N, classes) scores.

    Example:
        >>> correctness([0, 1, 2], [[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.0, 0.0, 1.0]]).tolist()
        [True, False, True]
    """
    y = np.asarray(labels).reshape(-1)
    p = np.asarray(predictions)
    if p.ndim == 2 and len(p) == len(y):
        p = p.argmax(axis=1)
    p = p.reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"{argument} must hold one prediction (or one row of scores) per label: "
                         f"{np.asarray(predictions).shape} for {y.shape[0]} labels")
    return p == y


def pack_correctness(correct: Any) -> str:
    """Per-sample correctness as a compact hex string (one bit per sample), for results kept in JSON.

    Example:
        >>> pack_correctness([True, False, True])
        'a0'
        >>> unpack_correctness("a0", 3).tolist()
        [True, False, True]
    """
    return np.packbits(np.asarray(correct, dtype=bool)).tobytes().hex()


def unpack_correctness(hex_bits: str, n: int) -> np.ndarray:
    """Inverse of :func:`pack_correctness`: the first ``n`` samples' correctness (bool)."""
    return np.unpackbits(np.frombuffer(bytes.fromhex(hex_bits), np.uint8))[:n].astype(bool)


@dataclass(frozen=True)
class PairedResult:
    """Model b against model a on the same test set (differences are b − a, in percentage points)."""

    total: int
    correct_a: int
    correct_b: int
    only_a: int          # images only a gets right
    only_b: int          # images only b gets right
    accuracy_a: float
    accuracy_b: float
    interval_a: tuple[float, float]
    interval_b: tuple[float, float]
    difference_pt: float
    difference_interval_pt: tuple[float, float]
    p_value: float
    alpha: float = ALPHA

    @property
    def significant(self) -> bool:
        """Whether McNemar's test rejects "the two models are equally accurate" at level ``alpha``."""
        return self.p_value < self.alpha

    @property
    def verdict(self) -> str:
        """"higher" or "lower" (b against a) when the test supports it, else "within noise"."""
        if not self.significant or self.only_a == self.only_b:
            return "within noise"
        return "higher" if self.only_b > self.only_a else "lower"

    def describe(self) -> str:
        """One phrase for prose: ``"−1.50 pt (95 % CI −2.66 to −0.34; McNemar p = 0.017): lower"``."""
        lo, hi = self.difference_interval_pt
        return (f"{self.difference_pt:+.2f} pt (95 % CI {lo:+.2f} to {hi:+.2f}; McNemar p = {self.p_value:.2g})"
                f": {self.verdict}").replace("-", "−")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(verdict=self.verdict, significant=self.significant)
        return out


def paired(labels: Any, predictions_a: Any, predictions_b: Any, confidence: float = CONFIDENCE,
           alpha: float = ALPHA) -> PairedResult:
    """Compare two models' predictions on the same labelled test set (b against a).

    ``predictions_*``: class indices, (N, classes) scores, or boolean correctness arrays
    (pass ``labels=None`` then).

    Example:
        >>> r = paired(None, [True, True, False, True], [True, False, False, True])
        >>> r.only_a, r.only_b, r.verdict
        (1, 0, 'within noise')
    """
    if labels is None:
        a = np.asarray(predictions_a)
        b = np.asarray(predictions_b)
        if a.dtype != bool or b.dtype != bool or a.shape != b.shape or a.ndim != 1:
            raise ValueError("with labels=None, predictions_a and predictions_b must be 1-D boolean "
                             "correctness arrays of the same length")
    else:
        a = correctness(labels, predictions_a, "predictions_a")
        b = correctness(labels, predictions_b, "predictions_b")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha!r}")
    n = int(a.size)
    if n == 0:
        raise ValueError("the test set must not be empty")
    ka, kb = int(a.sum()), int(b.sum())
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    lo, hi = paired_interval(only_a, only_b, n, confidence)
    return PairedResult(total=n, correct_a=ka, correct_b=kb, only_a=only_a, only_b=only_b,
                        accuracy_a=ka / n, accuracy_b=kb / n, interval_a=wilson_interval(ka, n, confidence),
                        interval_b=wilson_interval(kb, n, confidence), difference_pt=100.0 * (kb - ka) / n,
                        difference_interval_pt=(100.0 * lo, 100.0 * hi), p_value=mcnemar_p(only_a, only_b),
                        alpha=alpha)


def format_accuracy(correct: int, total: int, confidence: float = CONFIDENCE) -> str:
    """``"93.12 % (92.62–93.60)"``: an accuracy with its interval, for tables and prose.

    Example:
        >>> format_accuracy(9312, 10000)
        '93.12 % (92.61–93.60)'
    """
    lo, hi = wilson_interval(correct, total, confidence)
    return f"{100 * correct / total:.2f} % ({100 * lo:.2f}–{100 * hi:.2f})"
