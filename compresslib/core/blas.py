"""Run NumPy's BLAS/LAPACK on one thread where that is faster.

On a busy 2-core machine OpenBLAS's threads spin against each other: a 1024×1024 SVD took 11 s
with 2 threads and 0.6 s with 1, a 1536×1536 Cholesky 4.4 s against 0.25 s (measured here). No-op
without ``threadpoolctl``.

Example:
    >>> import numpy as np
    >>> with one_thread():
    ...     float(np.linalg.cholesky(np.eye(3) * 4.0)[0, 0])
    2.0
"""
from __future__ import annotations

import contextlib
from typing import Any


def one_thread() -> Any:
    """A context manager limiting BLAS to one thread (a null context without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


__all__ = ["one_thread"]
