"""Sparsity schedules (Zhu & Gupta 2017)."""
import pytest

from compresslib.core.schedules import ConstantSparsity, PolynomialDecay, resolve


def test_polynomial_decay_values():
    s = PolynomialDecay(0.0, 0.8, begin_step=10, end_step=110, frequency=25)
    assert s(0) == 0.0 and s(10) == 0.0
    assert s(60) == pytest.approx(0.8 * (1 - 0.5 ** 3))
    assert s(110) == pytest.approx(0.8) and s(1000) == pytest.approx(0.8)
    values = [s(t) for t in range(10, 111)]
    assert all(b >= a for a, b in zip(values, values[1:]))  # monotone
    assert [t for t in range(0, 200) if s.should_update(t)] == [10, 35, 60, 85, 110]


def test_constant_schedule():
    c = ConstantSparsity(0.5, begin_step=3)
    assert c(2) == 0.0 and c(3) == 0.5 and c(999) == 0.5
    assert [t for t in range(10) if c.should_update(t)] == [3]


@pytest.mark.parametrize("kwargs, match", [
    (dict(initial=0.0, final=1.0), "final must be in"),
    (dict(initial=0.0, final=0.5, begin_step=10, end_step=5), "end_step must be >= begin_step"),
    (dict(initial=0.0, final=0.5, frequency=0), "frequency must be >= 1"),
])
def test_bad_schedules_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PolynomialDecay(**kwargs)


def test_resolve():
    assert resolve(None, 0.7) == ConstantSparsity(0.7)
    with pytest.raises(TypeError, match="schedule must be"):
        resolve("cubic", 0.7)
