"""``compresslib.measure`` for runtime models (ONNX Runtime, OpenVINO, ``torch.export``, LiteRT).

:func:`compresslib.api.measure` sends every runtime model here before any backend: its file's
bytes, the layers recorded at export time, latency timed in the runtime, accuracy from its
outputs, all filled by :func:`compresslib.core.measure.assemble` like a framework model's report.

Example:
    >>> import numpy as np
    >>> from compresslib.runtimes import RuntimeModel
    >>> class Identity(RuntimeModel):
    ...     __compresslib_runtime__ = "onnxruntime"
    ...     def _run(self, x):
    ...         return x
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "m.onnx"); _ = open(path, "wb").write(b"12345678")
    >>> m = Identity(path, {"name": "id", "layers": [{"name": "fc", "kind": "Linear", "params": 6,
    ...                                                "nonzero_params": 4, "macs": 6}]})
    >>> r = measure(m, data=(np.eye(3), np.arange(3)), latency=False)
    >>> r.name, r.params, r.nonzero_params, r.macs, r.file_bytes, r.file_format, r.accuracy
    ('id (onnxruntime)', 6, 4, 6, 8, '.onnx', 1.0)
"""
from __future__ import annotations

import os
import tempfile
from typing import Any, Optional

import numpy as np

from compresslib.core.measure import assemble, check_measure_args, file_sizes
from compresslib.core.training import check_data
from compresslib.report import Report
from compresslib.runtimes import is_runtime_model
from compresslib.threads import get_threads
from compresslib.timing import time_calls


def _example(model: Any, data: Any, example_input: Any, batch_size: int) -> np.ndarray:
    """The batch to time: ``example_input``, else ``data``'s first ``batch_size`` inputs, else zeros of the
    model's fixed input shape; checked against that shape where the model knows it."""
    if example_input is not None:
        ex, arg = np.asarray(example_input), "example_input"
    elif data is not None:
        ex, arg = np.asarray(data[0][:batch_size]), "data"
    else:
        shape = getattr(model, "input_shape", None)
        if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
            raise ValueError("measure needs data=(x, y) or example_input= to run a runtime model")
        ex, arg = np.zeros((batch_size,) + tuple(shape[1:]), dtype=np.float32), "model"
    expected = getattr(model, "input_shape", None)
    if isinstance(expected, tuple) and ex.ndim >= 1 and (
            len(expected) != ex.ndim or any(e is not None and e != g for e, g in zip(expected[1:], ex.shape[1:]))):
        raise ValueError(f"{arg}: the model expects inputs of shape {expected}, got {ex.shape}")
    return ex.astype(np.float32) if ex.dtype.kind == "f" else ex


def _file_bytes(model: Any) -> tuple[int, int, str]:
    with tempfile.TemporaryDirectory() as tmp:
        path, fmt = model.save_native(tmp)
        size, gz = file_sizes(path)
    return size, gz, fmt


def measure(model: Any, data: Any = None, example_input: Any = None, *, name: Optional[str] = None,
            batch_size: int = 32, runs: int = 50, warmup: int = 10, latency: bool = True) -> Report:
    """Measure a runtime model (see ``compresslib.measure``): file bytes, recorded layers, latency, accuracy."""
    if not is_runtime_model(model):
        raise TypeError(f"model must be a runtime model (compresslib.deploy), got {type(model).__name__}")
    if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
        raise ValueError(f"data must be a pair (x, y) of arrays, got {type(data).__name__}")
    check_measure_args(batch_size)
    example = _example(model, data, example_input, batch_size)

    def accuracy() -> np.ndarray:  # each sample's correctness: the report gets the interval, compare the paired test
        x, y = check_data(data, "data")
        return np.asarray(model.predict(x)).argmax(1) == y

    return assemble(
        Report, framework=model.__compresslib_framework__, name=name or getattr(model, "name", type(model).__name__),
        layers=list(model.layer_stats()), native=_file_bytes(model), device="cpu",
        threads=getattr(model, "threads", None) or get_threads(),
        time=(lambda: time_calls(model, example, runs=runs, warmup=warmup)) if latency else None,
        batch_size=int(example.shape[0]), accuracy=accuracy if data is not None else None)


__all__ = ["measure"]
