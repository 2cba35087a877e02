"""Sparsity schedules for gradual pruning (shared by the PyTorch hook and the Keras callback).

``PolynomialDecay`` is the schedule of Zhu & Gupta (2017), "To prune, or not
to prune": sparsity rises from ``initial`` to ``final`` between
``begin_step`` and ``end_step``, fast at first and slowly at the end,

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_1 - t_0)) ** power,  power = 3,

and the masks are recomputed every ``frequency`` steps.

Example:
    >>> s = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=100, frequency=10)
    >>> [round(s(t), 4) for t in (0, 50, 100, 200)]
    [0.0, 0.7875, 0.9, 0.9]
    >>> s.should_update(20), s.should_update(25)
    (True, False)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


def _check_fraction(cls: str, field: str, value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{cls}.{field} must be in [0, 1), got {value!r}")


def _check_steps(cls: str, begin_step: int, end_step: int, frequency: int) -> None:
    for field, v in (("begin_step", begin_step), ("end_step", end_step), ("frequency", frequency)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{cls}.{field} must be a non-negative integer, got {v!r}")
    if frequency < 1:
        raise ValueError(f"{cls}.frequency must be >= 1, got {frequency!r}")
    if end_step < begin_step:
        raise ValueError(f"{cls}.end_step must be >= begin_step, got {end_step} < {begin_step}")


class Schedule:
    """Base class: ``schedule(step) -> sparsity`` and ``should_update(step) -> bool``."""

    begin_step: int = 0
    end_step: int = 0
    frequency: int = 1

    def __call__(self, step: int) -> float:
        raise NotImplementedError

    def should_update(self, step: int) -> bool:
        """Recompute masks at this step? Every ``frequency`` steps inside [begin, end], and at ``end_step``."""
        if step < self.begin_step or step > self.end_step:
            return False
        return (step - self.begin_step) % self.frequency == 0 or step == self.end_step


@dataclass(frozen=True)
class ConstantSparsity(Schedule):
    """The same ``sparsity`` from ``begin_step`` on (masks recomputed every ``frequency`` steps until ``end_step``).

    Example:
        >>> ConstantSparsity(0.5)(0), ConstantSparsity(0.5, begin_step=10)(3)
        (0.5, 0.0)
    """

    sparsity: float
    begin_step: int = 0
    end_step: Optional[int] = None  # None: the masks are computed once, at begin_step
    frequency: int = 1

    def __post_init__(self) -> None:
        _check_fraction("ConstantSparsity", "sparsity", self.sparsity)
        if self.end_step is None:
            object.__setattr__(self, "end_step", self.begin_step)
        _check_steps("ConstantSparsity", self.begin_step, self.end_step, self.frequency)

    def __call__(self, step: int) -> float:
        return float(self.sparsity) if step >= self.begin_step else 0.0


@dataclass(frozen=True)
class PolynomialDecay(Schedule):
    """Zhu & Gupta (2017): ``s_f + (s_i - s_f)(1 - progress)^power`` between ``begin_step`` and ``end_step``."""

    initial: float
    final: float
    begin_step: int = 0
    end_step: int = 1000
    frequency: int = 100
    power: float = 3.0

    def __post_init__(self) -> None:
        _check_fraction("PolynomialDecay", "initial", self.initial)
        _check_fraction("PolynomialDecay", "final", self.final)
        _check_steps("PolynomialDecay", self.begin_step, self.end_step, self.frequency)
        if not isinstance(self.power, (int, float)) or isinstance(self.power, bool) or self.power <= 0:
            raise ValueError(f"PolynomialDecay.power must be > 0, got {self.power!r}")

    def __call__(self, step: int) -> float:
        if step < self.begin_step:
            return 0.0
        span = self.end_step - self.begin_step
        progress = 1.0 if span == 0 else min(1.0, (step - self.begin_step) / span)
        return float(self.final + (self.initial - self.final) * (1.0 - progress) ** self.power)


def resolve(schedule, sparsity: float) -> Schedule:
    """The schedule to follow: ``schedule`` itself, or a constant one at ``sparsity`` when None."""
    if schedule is None:
        return ConstantSparsity(float(sparsity))
    if not isinstance(schedule, Schedule):
        raise TypeError(f"schedule must be None, ConstantSparsity or PolynomialDecay, got {type(schedule).__name__}")
    return schedule


__all__ = ["Schedule", "ConstantSparsity", "PolynomialDecay", "resolve"]
