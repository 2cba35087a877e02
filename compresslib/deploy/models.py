"""Runtime models: an exported file loaded into ONNX Runtime, OpenVINO or ``torch.export``, as a model.

A runtime model behaves like the model it came from, as far as compresslib is
concerned: ``compresslib.measure``, ``evaluate``, ``compresslib.compare``
and the benches treat it exactly like a framework model. Every runtime model is a
:class:`compresslib.runtimes.RuntimeModel` (the protocol is described there; Keras's
``LiteRTModel`` is one too).

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
from typing import Any, Optional

import numpy as np

from compresslib._dispatch import require
from compresslib.runtimes import RUNTIME_SUFFIX, RuntimeModel, check_threads

class OnnxRuntimeModel(RuntimeModel):
    """An ONNX file run by ONNX Runtime (CPU, all graph optimisations, ``threads`` intra-op threads)."""

    __compresslib_runtime__ = "onnxruntime"

    def __init__(self, path: str, threads: Optional[int] = None) -> None:
        ort = require("onnxruntime")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = check_threads(threads)
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
        ov = require("openvino")
        if precision not in ("f32", "bf16", "f16"):
            raise ValueError(f"precision must be 'f32', 'bf16' or 'f16', got {precision!r}")
        core = ov.Core()
        self.threads = check_threads(threads)
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
        from compresslib._dispatch import backend

        return backend("keras", "export").load_litert(path, **kwargs)
    raise ValueError(f"runtime must be one of {tuple(RUNTIME_SUFFIX)}, got {runtime!r}")


__all__ = ["RuntimeModel", "OnnxRuntimeModel", "OpenVINOModel", "TorchExportModel", "load", "RUNTIME_SUFFIX"]
