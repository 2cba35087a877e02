"""``cl.export``: write a model of either framework to a runtime file and load it back as a runtime model.

(This module is ``compresslib.deploy.exporting``, re-exported as ``compresslib.deploy.export``: a
submodule named ``export`` would shadow the function.)

==================  ==============================  ===========================================
runtime             PyTorch models                  Keras models
==================  ==============================  ===========================================
``"onnxruntime"``   ``.onnx`` (QDQ for int8)         ``.onnx`` (float; tf2onnx)
``"openvino"``      ``.xml`` + ``.bin`` (via ONNX)   ``.xml`` + ``.bin`` (float, via ONNX)
``"torch.export"``  ``.pt2`` (int8: PT2E Q/DQ ops,   --
                    compiled by Inductor)
``"litert"``        --                              ``.tflite`` (fp32, or the int8 LiteRTModel)
==================  ==============================  ===========================================

Every kind of model compresslib makes exports: fp32, BatchNorm-folded, structurally
pruned, low-rank, and int8 (``Int8Static``, QAT-converted, ``Int8Dynamic``). Int8
torch models carry compresslib's own calibrated scales and integers into the file
(see ``compresslib.torch.export``). The model passed in is never changed.

The returned runtime model (:mod:`compresslib.deploy.models`) is what ``compresslib.measure``,
``evaluate``, ``compresslib.compare`` and the benches measure, like a framework
model. Re-load a file later with ``compresslib.deploy.load``. Outputs of a
reloaded file are identical to the returned model's (same file, same runtime);
against the source framework they differ by float rounding (fp32: ~1e-5 relative),
and for int8 by at most a few quantization steps where the runtime rounds
differently (see ``book/deploy.md``).

Example:
    >>> import compresslib as cl                                                      # doctest: +SKIP
    >>> q = cl.quantize(model, cl.Int8Static(), calibration_data=x[:256])              # doctest: +SKIP
    >>> rt = cl.export(q, "resnet8_int8.onnx", runtime="onnxruntime")                  # doctest: +SKIP
    >>> cl.measure(rt, data=test).accuracy                                            # doctest: +SKIP
"""
from __future__ import annotations

import os
from typing import Any, Optional

from compresslib._dispatch import backend, framework_of, require
from compresslib.deploy.models import load
from compresslib.runtimes import RUNTIME_SUFFIX

RUNTIMES = {"torch": ("onnxruntime", "openvino", "torch.export"), "keras": ("litert", "onnxruntime", "openvino")}


def export(model: Any, path: str | os.PathLike, runtime: str = "onnxruntime", *, example_input: Any = None,
           full_range: bool = False, name: Optional[str] = None, **load_kwargs: Any) -> Any:
    """Write ``model`` for ``runtime`` at ``path``; return the file loaded as a runtime model.

    Args:
        model: a PyTorch or Keras model compresslib made (or any float model), never changed.
        path: the file to write; its suffix must match the runtime (``.onnx``, ``.xml``, ``.pt2``, ``.tflite``).
        runtime: ``"onnxruntime"``, ``"openvino"``, ``"torch.export"`` (PyTorch) or ``"litert"`` (Keras).
        example_input: an input batch for tracing a PyTorch model (e.g. ``x[:1]``); int8 models
            from ``Int8Static`` remember their input shape.
        full_range: PyTorch int8 only: spread each calibrated activation range over all 256
            levels instead of torch x86's 128 (same ranges, finer steps, other integers).
        name: a name recorded in the file (default: the model's class or Keras name).
        **load_kwargs: passed to the runtime model (``threads=``; ``precision=`` for OpenVINO;
            ``compile=`` for torch.export).

    Raises:
        ValueError: an unknown runtime, a wrong suffix, or a layer the runtime cannot take (named).
        ImportError: the runtime is not installed (the message names the extra to install).
    """
    framework = framework_of(model)
    allowed = RUNTIMES[framework]
    if runtime not in allowed:
        raise ValueError(f"runtime must be one of {allowed} for a {framework} model, got {runtime!r}")
    path = os.fspath(path)
    suffix = RUNTIME_SUFFIX[runtime]
    if not path.lower().endswith(suffix):
        raise ValueError(f"path must end with {suffix!r} for runtime {runtime!r}, got {path!r}")
    if runtime == "onnxruntime":
        require("onnxruntime")
    elif runtime == "openvino":
        require("openvino")
    if framework == "torch":
        tex = backend("torch", "export")
        writer = {"onnxruntime": tex.export_onnx, "openvino": tex.export_openvino, "torch.export": tex.export_torch}
        writer[runtime](model, path, example_input, full_range=full_range, name=name)
    else:
        if full_range:
            raise ValueError("full_range: only for PyTorch int8 models (LiteRT chooses its own int8 ranges)")
        kex = backend("keras", "export")
        if runtime == "litert":
            return kex.export_litert(model, path, name=name)
        {"onnxruntime": kex.export_onnx, "openvino": kex.export_openvino}[runtime](model, path, name=name)
    return load(path, runtime=runtime, **load_kwargs)


__all__ = ["export", "RUNTIMES"]
