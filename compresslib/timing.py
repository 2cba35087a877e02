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

from compresslib.core.measure import latency_stats, time_calls  # noqa: F401  (re-exported)


def _timer(model: Any, example: Any) -> Callable[[int, int], list[float]]:
    """``timer(runs, warmup) -> times`` for one model, with the example in the form it eats."""
    from compresslib._dispatch import backend, framework_of

    try:
        framework = framework_of(model)
    except TypeError:
        framework = None
    runtime = getattr(model, "__compresslib_runtime__", None)
    if framework == "torch" and runtime is None:
        from compresslib.torch import inputs

        # floats in the model's own dtype: a Float16/BFloat16 model rejects a float32 batch
        args, kwargs = inputs.to_call(example, inputs.model_device(model), inputs.float_dtype(model))
        ex = kwargs if kwargs else (args[0] if len(args) == 1 else args)
        time_model = backend("torch", "measure").time_model
        return lambda runs, warmup: time_model(model, ex, runs=runs, warmup=warmup)
    if framework == "keras" and runtime is None and hasattr(model, "weights"):
        # one traced function for every call of this timer (a new one per call would time tracing)
        return backend("keras", "measure").make_timer(model, _keras_example(model, example))
    if not callable(model):
        raise TypeError(f"models: cannot time {type(model).__name__}: not a model and not callable")
    ex = np.asarray(example) if not hasattr(example, "shape") else example
    return lambda runs, warmup: time_calls(model, ex, runs=runs, warmup=warmup)


def _keras_example(model: Any, example: Any) -> np.ndarray:
    """``example`` as an array, floats cast to the dtype of the model's (single) float input."""
    ex = np.asarray(example)
    model_inputs = getattr(model, "inputs", None) or []
    if len(model_inputs) == 1 and ex.dtype.kind == "f":
        try:
            dtype = np.dtype(str(getattr(model_inputs[0], "dtype", "float32")))
        except TypeError:  # bfloat16 has no NumPy dtype: the model casts what it gets
            return ex
        if dtype.kind == "f" and dtype != ex.dtype:
            ex = ex.astype(dtype)
    return ex


def interleaved_times(models: dict, example: Any, rounds: int = 7, runs: int = 15,
                      warmup: int = 3) -> dict[str, list[float]]:
    """Every call's milliseconds per model, the models timed in turn for ``rounds`` rounds of ``runs`` calls.

    The order rotates by one model each round, so the state one model leaves behind (caches, thread
    pools, clock) does not always fall on the same next model.
    """
    if not isinstance(models, dict) or not models:
        raise ValueError("models must be a non-empty dict {label: model}")
    if rounds < 1 or runs < 1:
        raise ValueError(f"rounds and runs must be >= 1, got rounds={rounds}, runs={runs}")
    timers = {label: _timer(m, example) for label, m in models.items()}
    times: dict[str, list[float]] = {label: [] for label in models}
    order = list(timers)
    for r in range(rounds):  # each round starts one model later: no model always follows the same neighbour
        for label in order[r % len(order):] + order[:r % len(order)]:
            times[label] += timers[label](runs, warmup)
    return times


def interleaved_latency(models: dict, example: Any, rounds: int = 7, runs: int = 15, warmup: int = 3,
                        spread: bool = False) -> dict:
    """Median milliseconds per model (``{label: ms}``), timed in interleaved rounds.

    Args:
        models: ``{label: model}``; torch modules, Keras models, runtime models or callables.
        example: one input batch (a NumPy array; torch models get it as a tensor on their device, floats in
            their parameters' dtype, so Float16/BFloat16 models run; Keras models in their input's dtype).
        rounds, runs, warmup: ``rounds`` passes over all models, each ``runs`` timed calls after
            ``warmup`` untimed ones.
        spread: return ``{label: (median, half inter-quartile range)}`` instead.
    """
    times = interleaved_times(models, example, rounds, runs, warmup)
    if spread:
        return {label: latency_stats(t) for label, t in times.items()}
    return {label: statistics.median(t) for label, t in times.items()}


def paired_ratio(a: Any, b: Any, example: Any, pairs: int = 200, warmup: int = 10,
                 max_seconds: float = 30.0) -> dict:
    """How many times slower ``b`` is than ``a``: the median over pairs of single calls, alternated.

    Each pair times one call of each model back to back (``a`` first in even pairs, ``b`` first in odd
    ones) and contributes ``t_b / t_a``; the drift of a shared machine moves both calls of a pair
    together, so the median ratio is far steadier than a ratio of two medians (on this project's 2-core
    machine: within ±0.5 % between repeats for two sub-millisecond OpenVINO models, where interleaved
    blocks of calls gave ratios from 0.7 to 1.7). Stops after ``max_seconds`` (with at least 10 pairs).

    Returns ``{"a_ms", "b_ms", "ratio", "pairs", "a_spread_ms", "b_spread_ms"}``: the medians of each
    model's calls, the median ratio, and half the inter-quartile range of each model's calls.

    Example:
        >>> import time
        >>> r = paired_ratio(lambda x: time.sleep(0.001), lambda x: time.sleep(0.002), None, pairs=20, warmup=1)
        >>> 1.5 < r["ratio"] < 2.5
        True
    """
    if pairs < 1 or warmup < 0:
        raise ValueError(f"pairs must be >= 1 and warmup >= 0, got pairs={pairs}, warmup={warmup}")
    timer_a, timer_b = _timer(a, example), _timer(b, example)
    timer_a(1, warmup)
    timer_b(1, warmup)
    ta: list[float] = []
    tb: list[float] = []
    end = time.perf_counter() + max_seconds
    for j in range(pairs):
        if j % 2 == 0:
            ta += timer_a(1, 0)
            tb += timer_b(1, 0)
        else:
            tb += timer_b(1, 0)
            ta += timer_a(1, 0)
        if time.perf_counter() > end and j >= 9:
            break
    return {"a_ms": statistics.median(ta), "b_ms": statistics.median(tb),
            "ratio": statistics.median([y / x for x, y in zip(ta, tb)]), "pairs": len(ta),
            "a_spread_ms": latency_stats(ta)[1], "b_spread_ms": latency_stats(tb)[1]}


__all__ = ["interleaved_latency", "interleaved_times", "paired_ratio", "time_calls"]
