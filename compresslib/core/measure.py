"""Framework-free pieces of measuring: file sizes, timing statistics.

Example:
    >>> latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    (3.0, 1.0)
"""
from __future__ import annotations

import gzip
import os
from typing import Sequence

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


def conv_macs(out_elements_per_sample: int, in_channels_per_group: int, kernel_elements: int) -> int:
    """MACs of a convolution: every output element sums ``in/groups × k_h × k_w`` products."""
    return int(out_elements_per_sample) * int(in_channels_per_group) * int(kernel_elements)


def dense_macs(out_elements_per_sample: int, in_features: int) -> int:
    """MACs of a dense/linear layer (any leading dims folded into the output count)."""
    return int(out_elements_per_sample) * int(in_features)
