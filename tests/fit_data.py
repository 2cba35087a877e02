"""Data and helpers shared by the streaming / resume / distributed training tests of both frameworks."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCHEDULE = dict(begin_step=0, end_step=12, frequency=4)   # gradual pruning to 75 % over the first 12 steps


def rows(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows made on demand from their index (a data set that never exists whole): 20 features, 4 classes."""
    x = np.stack([np.random.default_rng(int(i)).standard_normal(20).astype(np.float32) for i in ids])
    y = (x[:, :5].sum(1) > 0).astype(np.int64) + 2 * (x[:, 5] > 0)
    return x, y


class Stop(Exception):
    """A simulated interruption."""


def run_killed(script: str, timeout: int = 300) -> None:
    """Run ``script`` in a fresh Python that kills itself with SIGKILL; fail unless it died that way."""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": ROOT}, cwd=ROOT)
    assert proc.returncode == -9, proc.stderr[-2000:]
