"""compresslib.core.stats against scipy's reference implementations."""
import numpy as np
import pytest
from scipy import stats as sps

from compresslib.core import stats


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (980, 1000), (9312, 10000), (1, 2000)])
def test_wilson_matches_scipy(k, n):
    ref = sps.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = stats.wilson_interval(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-12) and hi == pytest.approx(ref.high, abs=1e-12)


@pytest.mark.parametrize("n01,n10", [(0, 0), (0, 1), (25, 10), (7, 7), (3, 19), (140, 180), (0, 60)])
def test_mcnemar_matches_exact_binomial_test(n01, n10):
    ref = 1.0 if n01 + n10 == 0 else sps.binomtest(min(n01, n10), n01 + n10, 0.5).pvalue
    assert stats.mcnemar_p(n01, n10) == pytest.approx(ref, rel=1e-9, abs=1e-15)


def test_paired_counts_and_verdicts():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 10_000)
    a = y.copy()
    a[:700] = (a[:700] + 1) % 10                        # a: 93.00 %
    same = a.copy()
    same[700:740] = (same[700:740] + 1) % 10            # 40 more errors ...
    same[:40] = y[:40]                                  # ... and 40 fixed: same accuracy
    worse = a.copy()
    worse[700:800] = (worse[700:800] + 1) % 10          # 100 more errors, none fixed
    r = stats.paired(y, a, same)
    assert (r.correct_a, r.correct_b, r.only_a, r.only_b) == (9300, 9300, 40, 40)
    assert r.verdict == "within noise" and r.p_value == 1.0 and r.difference_pt == 0.0
    r = stats.paired(y, a, worse)
    assert (r.only_a, r.only_b, r.verdict) == (100, 0, "lower")
    assert r.difference_pt == pytest.approx(-1.0) and r.p_value < 1e-20
    lo, hi = r.difference_interval_pt
    assert lo < -1.0 < hi < 0
    assert stats.paired(y, worse, a).verdict == "higher"


def test_paired_interval_covers_truth_about_95_percent():
    """Coverage of the paired interval on simulated pairs of models (true difference -0.5 pt)."""
    rng = np.random.default_rng(1)
    n, hits, trials = 5000, 0, 400
    for _ in range(trials):
        u = rng.random(n)
        a = u > 0.07                                    # a right with p 0.93
        b = a.copy()
        flip = rng.random(n)
        b[(flip < 0.010)] = False                        # b loses 1.0 pt ...
        b[(flip > 0.995) & ~a] = True                    # ... and gains some back where a is wrong
        true_d = -0.010 * 0.93 + 0.005 * 0.07
        lo, hi = stats.paired_interval(int((a & ~b).sum()), int((b & ~a).sum()), n)
        hits += lo <= true_d <= hi
    assert 0.92 <= hits / trials <= 0.98


def test_bad_arguments():
    with pytest.raises(ValueError, match="total"):
        stats.wilson_interval(5, 3)
    with pytest.raises(ValueError, match="only_a"):
        stats.mcnemar_p(-1, 3)
    with pytest.raises(ValueError, match="predictions_b"):
        stats.paired([0, 1], [0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="confidence"):
        stats.wilson_interval(1, 2, confidence=95)
    with pytest.raises(ValueError, match="boolean"):
        stats.paired(None, [1, 0], [1, 1])


def test_scores_and_describe():
    y = np.array([0, 1, 1, 0])
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.6, 0.4]])
    assert stats.correctness(y, scores).tolist() == [True, True, False, True]
    text = stats.paired(y, scores, y).describe()
    assert text.startswith("+25.00 pt") and "McNemar p = 1" in text and text.endswith("within noise")
