"""The Pareto front and the budget's choice (compresslib.core.pareto): exact indices, the rules, errors."""
import itertools

import numpy as np
import pytest

from compresslib.core import pareto


def _row(name, acc, ms, size, drop):
    return {"candidate": name, "accuracy": acc, "latency_ms": ms, "bytes": size, "drop_pt": drop}


ROWS = [_row("fp32", 0.95, 4.0, 1000, 0.0), _row("int8", 0.95, 2.0, 300, 0.0),
        _row("pruned", 0.93, 1.0, 200, 2.0), _row("bad", 0.90, 3.0, 900, 5.0),
        _row("tiny", 0.80, 1.5, 100, 15.0)]


def test_front_exact_and_no_dominated_member():
    assert pareto.front(ROWS) == [1, 2, 4]
    rng = np.random.default_rng(0)
    for _ in range(20):  # against brute force on random sets
        rows = [_row(str(i), float(rng.integers(80, 90)) / 100, float(rng.integers(1, 6)),
                     int(rng.integers(1, 6)), 0) for i in range(12)]
        f = pareto.front(rows)
        for i in f:
            assert not any(pareto.dominates(rows[j], rows[i]) for j in range(len(rows)))
        for i in set(range(len(rows))) - set(f):  # each left out: dominated, or a duplicate of a member
            key = lambda r: [r[k] for k, _ in pareto.OBJECTIVES]  # noqa: E731
            same = lambda j: key(rows[j]) == key(rows[i])  # noqa: E731
            assert any(pareto.dominates(rows[j], rows[i]) or same(j) for j in f)


def test_dominates_needs_one_strict_gain():
    a = _row("a", 0.9, 1.0, 10, 0)
    assert not pareto.dominates(a, dict(a)) and pareto.dominates(a, _row("b", 0.9, 1.0, 11, 0))
    assert not pareto.dominates(a, _row("c", 0.91, 2.0, 10, 0))


def test_choose_most_accurate_within_latency_or_size():
    assert pareto.choose(ROWS, latency_ms=2.5)[:2] == (1, True)
    assert pareto.choose(ROWS, size_bytes=250)[:2] == (2, True)
    assert pareto.choose(ROWS, latency_ms=1.2, size_bytes=250)[:2] == (2, True)


def test_choose_fastest_within_drop_only():
    assert pareto.choose(ROWS, max_drop=0.5)[:2] == (1, True)
    assert pareto.choose(ROWS, max_drop=2.0)[:2] == (2, True)
    assert pareto.choose(ROWS)[:2] == (2, True)  # no limit: the fastest


def test_infeasible_names_the_closest_and_how_far():
    i, ok, msg = pareto.choose(ROWS, latency_ms=0.5, max_drop=1.0)
    # excess: int8 3.0 (latency) ; pruned 1.0 + 1.0 = 2.0 ; tiny 2.0 + 14 -> pruned is closest
    assert (i, ok) == (2, False)
    assert msg == ("no candidate meets the budget (latency <= 0.5 ms, drop <= 1 pt); the closest is 'pruned' "
                   "(latency_ms 100 % over, max_drop 100 % over): accuracy 93.00 %, 1.000 ms, 200 bytes")


def test_excess_and_errors():
    assert pareto.excess(ROWS[0], latency_ms=2.0, size_bytes=2000, max_drop=0.0) == {"latency_ms": 1.0}
    with pytest.raises(ValueError, match="latency_ms must be a finite number"):
        pareto.choose(ROWS, latency_ms=-1)
    with pytest.raises(ValueError, match="rows must not be empty"):
        pareto.choose([])
    with pytest.raises(ValueError, match="has no latency_ms"):
        pareto.front([{"candidate": "x", "accuracy": 0.5, "latency_ms": None, "bytes": 1}])
