"""What the backends and :mod:`compresslib.deploy` share about runtimes, below both of them.

The backends write runtime files (``compresslib/<framework>/export.py``) and Keras makes
LiteRT models (``compresslib/keras/litert.py``); :mod:`compresslib.deploy` loads, measures and
exports them. Both need the runtimes' file suffixes, the base class of a model loaded into a
runtime, and ONNX→OpenVINO conversion: they live here so that no backend imports upward.

The runtime-model protocol (:class:`RuntimeModel`; every runtime model follows it, LiteRT's included):

* ``__compresslib_framework__``: the framework the model was exported from
  (``"torch"`` or ``"keras"``), so inputs keep that framework's layout;
* ``__compresslib_runtime__``: ``"onnxruntime"``, ``"openvino"``, ``"torch.export"`` or ``"litert"``;
* ``__call__(x)`` / ``predict_on_batch(x)`` on a NumPy batch, ``predict(x, batch_size)``;
* ``save_native(dirpath) -> (path, format)``: the runtime file (its size is the model's size);
* ``layer_stats()``: parameters, non-zeros and MACs per layer, recorded from the source
  model at export time (the runtime graph has no notion of the source's layers).

Example:
    >>> RUNTIME_SUFFIX["openvino"]
    '.xml'
    >>> class Doubler(RuntimeModel):
    ...     __compresslib_runtime__ = "onnxruntime"
    ...     def _run(self, x):
    ...         return 2 * x
    >>> m = Doubler("m.onnx", {"framework": "keras", "name": "d"})
    >>> m.name, m(np.ones((1, 2))).tolist(), m.__compresslib_framework__
    ('d (onnxruntime)', [[2.0, 2.0]], 'keras')
"""
from __future__ import annotations

import json
import os
import shutil
from typing import Any, Optional

import numpy as np

from compresslib._dispatch import require
from compresslib.report import LayerStats
from compresslib.threads import get_threads

RUNTIME_SUFFIX = {"onnxruntime": ".onnx", "openvino": ".xml", "torch.export": ".pt2", "litert": ".tflite"}


def check_threads(threads: Optional[int]) -> int:
    """``threads``, checked; :func:`compresslib.threads.get_threads` (all cores unless set) when None."""
    if threads is None:
        return get_threads()
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


class RuntimeModel:
    """Base of the runtime models: NumPy in, NumPy out, plus what ``measure`` needs.

    A subclass sets ``__compresslib_runtime__`` and implements ``_run(x)``; a model held in
    memory rather than a file (LiteRT) overrides ``save_native`` and ``files``.
    """

    __compresslib_runtime__ = "runtime"

    def __init__(self, path: str, meta: dict) -> None:
        self.path = os.fspath(path)
        self.meta = dict(meta or {})
        self.__compresslib_framework__ = self.meta.get("framework", "torch")
        self.name = f"{self.meta.get('name', 'model')} ({self.__compresslib_runtime__})"
        shape = self.meta.get("input_shape")
        self.input_shape = tuple(shape) if shape else None

    def _run(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - every runtime overrides it
        raise NotImplementedError

    def _as_input(self, x: Any) -> np.ndarray:
        """``x`` as the contiguous array the runtime takes (floats as float32; integers kept)."""
        arr = np.asarray(x)
        return np.ascontiguousarray(arr if arr.dtype.kind in "iub" else arr.astype(np.float32, copy=False))

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """Outputs for one batch (NumPy array in, NumPy array out; ``x`` is not changed)."""
        return self._run(self._as_input(x))

    def __call__(self, x: Any) -> np.ndarray:
        return self.predict_on_batch(x)

    def predict(self, x: Any, batch_size: int = 500, verbose: int = 0) -> np.ndarray:
        """Outputs for ``x`` in batches of ``batch_size``."""
        x = np.asarray(x)
        return np.concatenate([self.predict_on_batch(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])

    def files(self) -> list[str]:
        """The file(s) this model was loaded from."""
        return [self.path]

    def save_native(self, dirpath: str) -> tuple[str, str]:
        """Copy the runtime file(s) into ``dirpath``; return the main file's path and its format (its suffix)."""
        main = None
        for f in self.files():
            dest = os.path.join(dirpath, os.path.basename(f))
            shutil.copyfile(f, dest)
            main = main or dest
        if len(self.files()) > 1:  # OpenVINO: .xml + .bin; size the pair as one file
            joined = os.path.join(dirpath, "model" + RUNTIME_SUFFIX[self.__compresslib_runtime__] + ".all")
            with open(joined, "wb") as out:
                for f in self.files():
                    with open(f, "rb") as fh:
                        out.write(fh.read())
            main = joined
        return main, RUNTIME_SUFFIX[self.__compresslib_runtime__]

    def layer_stats(self) -> list[LayerStats]:
        """The per-layer rows recorded from the source model at export time."""
        return [LayerStats(**d) for d in self.meta.get("layers", [])]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, framework={self.__compresslib_framework__!r})"


def is_runtime_model(model: Any) -> bool:
    """Whether ``model`` runs in a runtime (a :class:`RuntimeModel`, or anything saying so)."""
    return isinstance(model, RuntimeModel) or bool(getattr(model, "__compresslib_runtime__", None))


def onnx_to_openvino(onnx_path: str, path: str, meta: dict) -> None:
    """Convert an ONNX file to OpenVINO IR at ``path`` (float32 weights kept float32), carrying ``meta``."""
    ov = require("openvino")
    ov_model = ov.convert_model(onnx_path)
    ov_model.set_rt_info(json.dumps(meta), ["compresslib"])
    ov.save_model(ov_model, path, compress_to_fp16=False)


__all__ = ["RUNTIME_SUFFIX", "RuntimeModel", "check_threads", "is_runtime_model", "onnx_to_openvino"]
