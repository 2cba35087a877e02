"""What GPTQ, AWQ, Wanda and SparseGPT do to one layer, given its weight and calibration statistics.

Both backends walk the model layer by layer (each layer's inputs recorded on calibration data with
the layers before it already compressed), collect a :class:`~compresslib.core.gptq.HessianAccumulator`
and a sample of input rows per layer, and call :func:`compress_layer` here, so the two frameworks
share every decision. ``config`` is read by its class name and fields (core does not import the
configs).

Example:
    >>> import numpy as np
    >>> from compresslib.core.gptq import HessianAccumulator
    >>> from compresslib.configs import GPTQ, Wanda
    >>> rng = np.random.default_rng(0)
    >>> x, w = rng.normal(size=(256, 32)), rng.normal(size=(8, 32))
    >>> acc = HessianAccumulator(32); acc.update(x)
    >>> r = compress_layer(GPTQ(bits=4, group_size=16), w, acc, x)
    >>> r.q.shape, r.scale.shape, r.bits, r.group_size
    ((8, 32), (8, 2), 4, 16)
    >>> int((compress_layer(Wanda(0.5), w, acc, x).weight == 0).sum())
    128
    >>> fits(GPTQ(group_size=48), 32)
    'group_size 48 does not divide the fan-in 32'
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from compresslib.core import awq, gptq, sparsegpt
from compresslib.core.blas import one_thread

QUANTIZERS = ("GPTQ", "AWQ")
PRUNERS = ("Wanda", "SparseGPT")
MAX_ROWS = 2048  # input rows kept per layer for AWQ's search (the Hessian uses all rows)


@dataclass
class Result:
    """Codes ``q`` (out, in), ``scale`` (out, groups), ``bits``, ``group_size`` and AWQ's ``input_scale``
    for a quantizer; the pruned float ``weight`` (out, in) for a pruner."""

    q: Optional[np.ndarray] = None
    scale: Optional[np.ndarray] = None
    bits: int = 0
    group_size: int = 0
    input_scale: Optional[np.ndarray] = None
    weight: Optional[np.ndarray] = None

    def dequantize(self) -> np.ndarray:
        """The weight the layer computes with, (out, in) float32."""
        if self.weight is not None:
            return self.weight
        w = gptq.Quantized(self.q, self.scale, self.bits, self.group_size).dequantize()
        return w if self.input_scale is None else (w / self.input_scale[None, :]).astype(np.float32)


def fits(config: Any, fan_in: int) -> Optional[str]:
    """Why ``config`` cannot handle a layer of this fan-in (None when it can)."""
    name = type(config).__name__
    if name in QUANTIZERS and config.group_size is not None and fan_in % config.group_size:
        return f"group_size {config.group_size} does not divide the fan-in {fan_in}"
    if name in PRUNERS and config.sparsity is None and fan_in % config.m:
        return f"fan-in {fan_in} is not a multiple of m={config.m}"
    return None


def plan(config: Any, steps: list[list[str]],
         fan_in: Callable[[str], int]) -> tuple[list[list[str]], list[str]]:
    """The calibration steps with the layers ``config`` can handle, and ``"name (why)"`` for the others.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class GPTQ:
        ...     group_size: int = 4
        >>> plan(GPTQ(), [["q", "k"], ["o"]], {"q": 8, "k": 8, "o": 6}.__getitem__)
        ([['q', 'k']], ['o (group_size 4 does not divide the fan-in 6)'])
    """
    todo, skipped = [], []
    for step in steps:
        keep = []
        for name in step:
            why = fits(config, fan_in(name))
            (skipped.append(f"{name} ({why})") if why else keep.append(name))
        if keep:
            todo.append(keep)
    return todo, skipped


def needs_rows(config: Any) -> bool:
    """Whether the technique needs a sample of input rows besides the Hessian (AWQ's search)."""
    return type(config).__name__ == "AWQ"


def compress_layer(config: Any, w: np.ndarray, acc: gptq.HessianAccumulator,
                   rows: Optional[np.ndarray] = None) -> Result:
    """The compressed form of one layer's weight ``w`` (out, in) from its calibration statistics
    (LAPACK on one thread: :mod:`compresslib.core.blas`)."""
    with one_thread():
        return _compress(config, w, acc, rows)


def _compress(config: Any, w: np.ndarray, acc: gptq.HessianAccumulator, rows: Optional[np.ndarray]) -> Result:
    name = type(config).__name__
    w = np.asarray(w, np.float32)
    if name == "GPTQ":
        found = gptq.gptq(w, acc.h, config.bits, config.group_size, config.act_order, config.damping)
        return Result(found.q, found.scale, found.bits, found.group_size)
    if name == "AWQ":
        if rows is None or len(rows) == 0:
            raise ValueError("AWQ needs a sample of the layer's input rows")
        found = awq.search(w, rows, config.bits, config.group_size, mean_abs=acc.mean_abs)
        q = found.quantized
        return Result(q.q, q.scale, q.bits, q.group_size, input_scale=found.input_scale)
    if name == "Wanda":
        keep = sparsegpt.wanda_mask(w, acc.norm, config.sparsity, config.n, config.m)
        return Result(weight=np.where(keep, w, np.float32(0)).astype(np.float32))
    if name == "SparseGPT":
        pruned, _ = sparsegpt.sparsegpt(w, acc.h, config.sparsity, config.n, config.m, config.damping)
        return Result(weight=pruned)
    raise TypeError(f"config must be one of {QUANTIZERS + PRUNERS}, got {name}")


def missing_calibration(technique: str) -> ValueError:
    """The error of a call without ``calibration_data``."""
    return ValueError(f"calibration_data: {technique} needs example inputs (a few hundred rows or sequences, "
                      "or an iterable of batches) to record each layer's inputs")


__all__ = ["QUANTIZERS", "PRUNERS", "MAX_ROWS", "Result", "fits", "needs_rows", "compress_layer",
           "missing_calibration"]
