"""Framework-free pieces of measuring: file sizes, timing statistics.

Example:
    >>> latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    (3.0, 1.0)
"""
from __future__ import annotations

import gzip
import os
import time
from typing import Any, Callable, Optional, Sequence

import numpy as np


def file_sizes(path: str | os.PathLike) -> tuple[int, int]:
    """Bytes of the file at ``path`` and of the same bytes gzipped (level 9, no timestamp)."""
    data = open(path, "rb").read()
    return len(data), len(gzip.compress(data, compresslevel=9, mtime=0))


def latency_stats(times_ms: Sequence[float]) -> tuple[float, float]:
    """Median and half the inter-quartile range of a list of timings."""
    arr = np.asarray(times_ms, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("times_ms must not be empty")
    q1, med, q3 = np.percentile(arr, [25, 50, 75])
    return float(med), float((q3 - q1) / 2)


def load_average() -> float | None:
    """The 1-minute system load average (None where the OS has none).

    Latency measured while other processes keep the cores busy is not
    trustworthy (OpenMP threads wait for a core); reports carry this number so
    a reader can tell.
    """
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


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


def conv_macs(out_elements_per_sample: int, in_channels_per_group: int, kernel_elements: int) -> int:
    """MACs of a convolution: every output element sums ``in/groups × k_h × k_w`` products."""
    return int(out_elements_per_sample) * int(in_channels_per_group) * int(kernel_elements)


def dense_macs(out_elements_per_sample: int, in_features: int) -> int:
    """MACs of a dense/linear layer (any leading dims folded into the output count)."""
    return int(out_elements_per_sample) * int(in_features)


def check_measure_args(batch_size: Any, packed: Any = False) -> None:
    """The options every backend's ``measure`` takes, checked once."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not isinstance(packed, bool):
        raise TypeError(f"packed must be True or False, got {packed!r}")


def assemble(into: Callable[..., Any], *, framework: str, name: str, layers: list, native: tuple[int, int, str], device: str,
             threads: Optional[int], time: Optional[Callable[[], list[float]]] = None,
             batch_size: Optional[int] = None, accuracy: Optional[Callable[[], Any]] = None,
             shared_params: int = 0) -> Any:
    """A report from what a backend measured: the one place its fields are filled.

    ``into``: the report class, :class:`compresslib.report.Report` (passed in: ``core`` imports
    only ``core``); ``layers``: per-layer ``LayerStats``; ``native``: ``(bytes, gzipped bytes, format)``;
    ``time()``: the latency samples in ms (skipped when None); ``accuracy()``: top-1 in 0..1, or each
    sample's correctness (a boolean array: the report then carries ``correct`` and its interval).
    ``shared_params``: parameters held by several layers, already counted once in ``layers``. A layer
    with parameters but no MACs is listed in ``macs_not_counted`` (an embedding lookup does no MACs).

    Example:
        >>> from compresslib.report import LayerStats, Report
        >>> r = assemble(Report, framework="torch", name="m", layers=[LayerStats("fc", "Linear", 12, 6, 10)],
        ...              native=(400, 300, ".pt"), device="cpu", threads=1, time=lambda: [1.0, 2.0, 3.0],
        ...              batch_size=4)
        >>> r.params, r.nonzero_params, r.macs, r.latency_ms, r.batch_size
        (12, 6, 10, 2.0, 4)
    """
    size, gz, fmt = native
    report = into(name=name, framework=framework, params=sum(l.params for l in layers),
                    nonzero_params=sum(l.nonzero_params for l in layers), file_bytes=size, gzip_bytes=gz,
                    file_format=fmt, macs=sum(l.macs for l in layers), layers=list(layers), device=device,
                    threads=threads, shared_params=int(shared_params),
                    macs_not_counted=[f"{l.name} ({l.kind})" for l in layers
                                      if l.params and not l.macs and "Embedding" not in l.kind])
    if time is not None:
        times = time()
        report.latency_ms, report.latency_spread_ms = latency_stats(times)
        report.latency_runs, report.batch_size = len(times), batch_size
        report.load_average = load_average()
    if accuracy is not None:
        value = accuracy()
        if isinstance(value, np.ndarray):  # per-sample correctness: the report can carry its interval
            report.correct = value.astype(bool).reshape(-1)
            report.accuracy = float(report.correct.mean()) if report.correct.size else None
        else:
            report.accuracy = value
    return report


def rnn_macs(kind: str, steps: int, input_size: int, hidden_size: int, num_layers: int = 1,
             bidirectional: bool = False, proj_size: int = 0) -> int:
    """MACs per sample of a recurrent layer: each step, each gate multiplies [x, h] by its weights.

    ``kind``: "LSTM" (4 gates), "GRU" (3) or "RNN" (1). With ``proj_size`` (LSTM) the
    hidden state fed back is projected.

    Example:
        >>> rnn_macs("LSTM", steps=5, input_size=8, hidden_size=16)   # 5 · 4 · 16 · (8 + 16)
        7680
    """
    gates = {"LSTM": 4, "GRU": 3, "RNN": 1}[kind]
    directions = 2 if bidirectional else 1
    out_size = proj_size or hidden_size
    total, layer_in = 0, input_size
    for _ in range(num_layers):
        per_step = gates * hidden_size * (layer_in + out_size) + (hidden_size * proj_size if proj_size else 0)
        total += directions * steps * per_step
        layer_in = out_size * directions
    return int(total)
