"""One timer for every speed comparison: models timed in interleaved rounds.

On a shared machine the speed drifts by 10-20 % over minutes, and a model timed
right after another job can be several times slower. Timing models one after
another lets that drift fall on whichever model came later; timing them in
rounds (each model a few calls, then the next, over and over) spreads it over
all of them, so ratios between the medians are fair. Every bench and chapter
compares speeds through ``interleaved_latency``.

Any model compresslib measures can be timed: a ``torch.nn.Module`` (through
``compresslib.torch.measure.time_model``: inference mode, CUDA synchronised,
allocator warmed), a Keras model (a traced ``tf.function``) or a runtime model
(ONNX Runtime, OpenVINO, LiteRT, a compiled ``torch.export`` program) called on
a NumPy batch.

Example:
    >>> import numpy as np
    >>> from compresslib.timing import interleaved_latency
    >>> fast = lambda x: x.sum()
    >>> slow = lambda x: np.sort(np.repeat(x, 50)).sum()
    >>> t = interleaved_latency({"fast": fast, "slow": slow}, np.ones((8, 64), np.float32), rounds=3, runs=5)
    >>> sorted(t) == ["fast", "slow"] and t["fast"] < t["slow"]
    True
"""
from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import numpy as np

from compresslib.core.measure import latency_stats


def time_calls(fn: Callable[[Any], Any], example: Any, runs: int = 50, warmup: int = 10,
               max_seconds: float = 10.0) -> list[float]:
    """Wall-clock milliseconds of ``runs`` calls ``fn(example)`` after ``warmup`` calls.

    For runtime models and plain callables; stops early (after at least 5 runs) once
    ``max_seconds`` have passed.
    """
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs}, warmup={warmup}")
    for _ in range(warmup):
        fn(example)
    times: list[float] = []
    end = time.perf_counter() + max_seconds
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(example)
        times.append(1000.0 * (time.perf_counter() - t0))
        if time.perf_counter() > end and len(times) >= 5:
            break
    return times


def _timer(model: Any, example: Any) -> Callable[[int, int], list[float]]:
    """``timer(runs, warmup) -> times`` for one model, with the example in the form it eats."""
    from compresslib._dispatch import backend, framework_of

    try:
        framework = framework_of(model)
    except TypeError:
        framework = None
    runtime = getattr(model, "__compresslib_runtime__", None)
    if framework == "torch" and runtime is None:
        import torch

        from compresslib.torch.train import model_device

        ex = torch.as_tensor(np.asarray(example)) if not isinstance(example, torch.Tensor) else example
        ex = ex.to(model_device(model))
        time_model = backend("torch", "measure").time_model
        return lambda runs, warmup: time_model(model, ex, runs=runs, warmup=warmup)
    if framework == "keras" and runtime is None and hasattr(model, "weights"):
        time_model = backend("keras", "measure").time_model
        ex = np.asarray(example)
        return lambda runs, warmup: time_model(model, ex, runs=runs, warmup=warmup)
    if not callable(model):
        raise TypeError(f"models: cannot time {type(model).__name__}: not a model and not callable")
    ex = np.asarray(example) if not hasattr(example, "shape") else example
    return lambda runs, warmup: time_calls(model, ex, runs=runs, warmup=warmup)


def interleaved_times(models: dict, example: Any, rounds: int = 7, runs: int = 15,
                      warmup: int = 3) -> dict[str, list[float]]:
    """Every call's milliseconds per model, the models timed in turn for ``rounds`` rounds of ``runs`` calls."""
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: model}")
    if rounds < 1 or runs < 1:
        raise ValueError(f"rounds and runs must be >= 1, got rounds={rounds}, runs={runs}")
    timers = {label: _timer(m, example) for label, m in models.items()}
    times: dict[str, list[float]] = {label: [] for label in models}
    for _ in range(rounds):
        for label, timer in timers.items():
            times[label] += timer(runs, warmup)
    return times


def interleaved_latency(models: dict, example: Any, rounds: int = 7, runs: int = 15, warmup: int = 3,
                        spread: bool = False) -> dict:
    """Median milliseconds per model (``{label: ms}``), timed in interleaved rounds.

    Args:
        models: ``{label: model}``; torch modules, Keras models, runtime models or callables.
        example: one input batch (a NumPy array; torch models get it as a tensor on their device).
        rounds, runs, warmup: ``rounds`` passes over all models, each ``runs`` timed calls after
            ``warmup`` untimed ones.
        spread: return ``{label: (median, half inter-quartile range)}`` instead.
    """
    times = interleaved_times(models, example, rounds, runs, warmup)
    if spread:
        return {label: latency_stats(t) for label, t in times.items()}
    return {label: statistics.median(t) for label, t in times.items()}


__all__ = ["interleaved_latency", "interleaved_times", "time_calls"]
