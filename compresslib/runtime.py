"""Runtime models: an exported file loaded into ONNX Runtime, OpenVINO or ``torch.export``, as a model.

A runtime model behaves like the model it came from, as far as compresslib is
concerned: ``compresslib.measure``, ``evaluate``, ``compresslib.compare``
and the benches treat it exactly like a framework model. The protocol (the same
one ``compresslib.keras.quantization.LiteRTModel`` follows):

* ``__compresslib_framework__``: the framework the model was exported from
  (``"torch"`` or ``"keras"``), so inputs keep that framework's layout;
* ``__compresslib_runtime__``: ``"onnxruntime"``, ``"openvino"`` or ``"torch.export"``;
* ``__call__(x)`` / ``predict_on_batch(x)`` on a NumPy batch, ``predict(x, batch_size)``;
* ``save_native(dirpath) -> (path, format)``: the runtime file (its size is the model's size);
* ``layer_stats()``: parameters, non-zeros and MACs per layer, recorded from the source
  model at export time (the runtime graph has no notion of the source's layers).

Loading never unpickles: ONNX and OpenVINO files hold no Python objects, and a
``.pt2`` file is read with ``torch.load(weights_only=True)`` only (a file that
would need more is refused).

Example:
    >>> import compresslib as cl, numpy as np
    >>> m = cl.zoo.pretrained("lenet5", framework="torch")                        # doctest: +SKIP
    >>> rt = cl.export(m, "lenet5.onnx", runtime="onnxruntime", example_input=x[:1])  # doctest: +SKIP
    >>> rt(x[:8]).shape, cl.measure(rt, data=test).file_format                    # doctest: +SKIP
    ((8, 10), '.onnx')
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any, Optional

import numpy as np

from compresslib.report import LayerStats, Report

RUNTIME_SUFFIX = {"onnxruntime": ".onnx", "openvino": ".xml", "torch.export": ".pt2", "litert": ".tflite"}


def _threads(threads: Optional[int]) -> int:
    if threads is None:
        return os.cpu_count() or 1
    if not isinstance(threads, int) or threads < 1:
        raise ValueError(f"threads must be a positive integer, got {threads!r}")
    return threads


class RuntimeModel:
    """Base of the runtime models: NumPy in, NumPy out, plus what ``measure`` needs."""

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

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """Outputs for one batch (float32 NumPy array in, float32 NumPy array out; ``x`` is not changed)."""
        arr = np.asarray(x)
        arr = np.ascontiguousarray(arr if arr.dtype.kind in "iub" else arr.astype(np.float32, copy=False))
        return self._run(arr)

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
        return [LayerStats(**d) for d in self.meta.get("layers", [])]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r}, framework={self.__compresslib_framework__!r})"


class OnnxRuntimeModel(RuntimeModel):
    """An ONNX file run by ONNX Runtime (CPU, all graph optimisations, ``threads`` intra-op threads)."""

    __compresslib_runtime__ = "onnxruntime"

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        ort = _require("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = _threads(threads)
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.threads = opts.intra_op_num_threads
        self.session = ort.InferenceSession(os.fspath(path), opts, providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map.get("compresslib")
        super().__init__(path, json.loads(meta) if meta else {})
        self._input = self.session.get_inputs()[0].name
        if self.input_shape is None:
            dims = self.session.get_inputs()[0].shape
            self.input_shape = (None,) + tuple(d if isinstance(d, int) else None for d in dims[1:])

    def _run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self._input: x})[0]


class OpenVINOModel(RuntimeModel):
    """An OpenVINO IR (``.xml`` + ``.bin``) or ONNX file compiled for the CPU.

    ``precision="f32"`` (default) forces float32 inference: on CPUs with bf16 support
    OpenVINO otherwise runs float layers in bfloat16. Int8 layers run int8 either way.
    """

    __compresslib_runtime__ = "openvino"

    def __init__(self, path: str, threads: Optional[int] = None, precision: str = "f32") -> None:
        ov = _require("openvino")
        if precision not in ("f32", "bf16", "f16"):
            raise ValueError(f"precision must be 'f32', 'bf16' or 'f16', got {precision!r}")
        core = ov.Core()
        self.threads = _threads(threads)
        model = core.read_model(os.fspath(path))
        meta = {}
        if model.has_rt_info(["compresslib"]):
            meta = json.loads(model.get_rt_info(["compresslib"]).astype(str))
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                          "INFERENCE_NUM_THREADS": self.threads,
                                                          "PERFORMANCE_HINT": "LATENCY"})
        self._request = self.compiled.create_infer_request()
        super().__init__(path, meta)
        self.precision = precision

    def files(self) -> list[str]:
        bin_path = os.path.splitext(self.path)[0] + ".bin"
        return [self.path] + ([bin_path] if self.path.endswith(".xml") and os.path.exists(bin_path) else [])

    def _run(self, x: np.ndarray) -> np.ndarray:
        self._request.infer({0: x})
        return np.array(self._request.get_output_tensor(0).data)


class TorchExportModel(RuntimeModel):
    """A ``torch.export`` program (``.pt2``), compiled with Inductor (``compile=True``, the default).

    Int8 programs (Q/DQ ops) compile with Inductor's freezing on, which lowers them to
    x86 int8 kernels (the PT2E path). The first call per batch size compiles (seconds).
    """

    __compresslib_runtime__ = "torch.export"

    def __init__(self, path: str, compile: bool = True) -> None:
        import torch

        self.threads = torch.get_num_threads()
        extra = {"compresslib.json": ""}
        program = _load_program(os.fspath(path), extra)
        super().__init__(path, json.loads(extra["compresslib.json"]) if extra["compresslib.json"] else {})
        self.program = program
        module = program.module()
        self.compiled = bool(compile)
        self._fn = torch.compile(module, dynamic=False) if compile else module

    def _run(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode(), _freezing(self.compiled):
            return self._fn(torch.from_numpy(x)).float().numpy()


class _freezing:
    """Inductor's ``freezing`` on while compiling/running (needed to lower int8 Q/DQ patterns)."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self):
        if self.on:
            import torch._inductor.config as cfg

            self._patch = cfg.patch(freezing=True)
            self._patch.__enter__()
        return self

    def __exit__(self, *exc):
        if self.on:
            self._patch.__exit__(*exc)
        return False


def _load_program(path: str, extra: dict) -> Any:
    """``torch.export.load`` with unpickling refused (torch falls back to ``weights_only=False`` on failure)."""
    import torch

    real_load = torch.load

    def weights_only_load(*args, **kwargs):
        if kwargs.get("weights_only") is False:
            raise ValueError(f"{path}: refusing to unpickle Python objects from a .pt2 file")
        kwargs["weights_only"] = True
        return real_load(*args, **kwargs)

    torch.load = weights_only_load
    try:
        return torch.export.load(path, extra_files=extra)
    finally:
        torch.load = real_load


def load(path: str, runtime: Optional[str] = None, **kwargs: Any) -> Any:
    """Load an exported file as a runtime model; ``runtime`` defaults from the suffix.

    ``.onnx`` → ONNX Runtime (``runtime="openvino"`` runs it in OpenVINO), ``.xml`` → OpenVINO,
    ``.pt2`` → ``torch.export`` (compiled), ``.tflite`` → LiteRT.

    Example:
        >>> rt = load("lenet5.onnx")                      # doctest: +SKIP
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no file {path!r}")
    suffix = os.path.splitext(path)[1].lower()
    by_suffix = {v: k for k, v in RUNTIME_SUFFIX.items()}
    runtime = runtime or by_suffix.get(suffix)
    if runtime is None:
        raise ValueError(f"path: cannot tell the runtime from suffix {suffix!r}; pass runtime= one of "
                         f"{tuple(RUNTIME_SUFFIX)}")
    if runtime == "onnxruntime":
        return OnnxRuntimeModel(path, **kwargs)
    if runtime == "openvino":
        return OpenVINOModel(path, **kwargs)
    if runtime == "torch.export":
        return TorchExportModel(path, **kwargs)
    if runtime == "litert":
        from compresslib.keras.export import load_litert

        return load_litert(path, **kwargs)
    raise ValueError(f"runtime must be one of {tuple(RUNTIME_SUFFIX)}, got {runtime!r}")


def measure_runtime(model: Any, data: Any = None, example_input: Any = None, *, name: Optional[str] = None,
                    batch_size: int = 32, runs: int = 50, warmup: int = 10, latency: bool = True) -> Report:
    """``compresslib.measure`` for a runtime model: its file's bytes, recorded layers, latency, accuracy."""
    from compresslib.core.measure import file_sizes, latency_stats, load_average
    from compresslib.core.training import check_data
    from compresslib.timing import time_calls

    if data is not None and (not isinstance(data, (tuple, list)) or len(data) != 2):
        raise ValueError(f"data must be a pair (x, y) of arrays, got {type(data).__name__}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if example_input is not None:
        example = np.asarray(example_input, dtype=np.float32)
    elif data is not None:
        example = np.asarray(data[0][:batch_size], dtype=np.float32)
    else:
        raise ValueError("measure needs data=(x, y) or example_input= to run a runtime model")
    layers = model.layer_stats()
    with tempfile.TemporaryDirectory() as tmp:
        path, fmt = model.save_native(tmp)
        size, gz = file_sizes(path)
    report = Report(name=name or getattr(model, "name", type(model).__name__),
                    framework=model.__compresslib_framework__,
                    params=sum(l.params for l in layers), nonzero_params=sum(l.nonzero_params for l in layers),
                    file_bytes=size, gzip_bytes=gz, file_format=fmt, macs=sum(l.macs for l in layers),
                    layers=layers, device="cpu", threads=getattr(model, "threads", None) or (os.cpu_count() or 1))
    if latency:
        times = time_calls(model, example, runs=runs, warmup=warmup)
        report.latency_ms, report.latency_spread_ms = latency_stats(times)
        report.latency_runs, report.batch_size = len(times), int(example.shape[0])
        report.load_average = load_average()
    if data is not None:
        x, y = check_data(data, "data")
        report.accuracy = float((model.predict(x).argmax(1) == y).mean())
    return report


_EXTRAS = {"onnxruntime": "onnx", "onnx": "onnx", "onnxscript": "onnx", "openvino": "openvino", "tf2onnx": "onnx",
           "ai_edge_litert": "keras"}


def _require(*modules: str) -> Any:
    """Import ``modules`` (return the last) or raise an ImportError naming the compresslib extra that installs it."""
    import importlib

    mod = None
    for module in modules:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"this needs the '{module}' package: "
                              f"pip install 'compresslib[{_EXTRAS.get(module, module)}]'") from exc
    return mod


__all__ = ["RuntimeModel", "OnnxRuntimeModel", "OpenVINOModel", "TorchExportModel", "load", "measure_runtime",
           "RUNTIME_SUFFIX"]
