"""Export PyTorch models to runtime files: ONNX (ONNX Runtime), OpenVINO IR, ``torch.export`` (``.pt2``).

Every kind of model compresslib makes exports: float models as they are (folded,
structurally pruned, low-rank), and the int8 models of ``compresslib.quantize``
through a *QDQ reference model*: a float graph in which each quantized tensor is
written as ``dequantize(quantize(x))`` with compresslib's own scales and zero
points, and each int8 weight is stored as int8 with its per-channel scales. The
ONNX exporter turns those ops into ``QuantizeLinear``/``DequantizeLinear`` pairs
(the QDQ format ONNX Runtime and OpenVINO fuse into int8 kernels), and Inductor
lowers the same graph, exported with ``torch.export``, to its x86 int8 kernels
(the representation ``torchao.quantization.pt2e``'s ``convert_pt2e`` produces).
So one set of integers runs in every runtime.

* ``Int8Static`` (and QAT-converted) models: activations uint8 with the scale and
  zero point torch calibrated. torch's x86 engine keeps activations in 0..127
  (``reduce_range``); runtimes quantize to 0..255 with the *same* scale and zero
  point, so the integers agree wherever torch does not saturate (inside the
  calibrated range). ``full_range=True`` instead spreads the calibrated range over
  all 256 levels (scale × 127/255), which tracks fp32 more closely; a model made
  with ``Int8Static(bias_correction=True)`` then carries the bias corrections found
  on that grid at quantize time.
* ``Int8Dynamic`` models: int8 per-channel weights as compresslib made them;
  activations quantized per batch by the runtime (ONNX ``DynamicQuantizeLinear``,
  full uint8 range, where torch's dynamic kernels use 7 bits).

Refused, naming the layer: compresslib's packed 4-bit/8-bit weight-only layers,
torchao tensor subclasses, half-precision weights, and quantized layers without
a QDQ translation.

The QDQ reference model and its layers are in :mod:`compresslib.torch.qdq`; this module holds
only the writers.

Example:
    >>> export_onnx(cl.zoo.pretrained("lenet5", "torch"), "lenet5.onnx", x[:1])    # doctest: +SKIP
"""
from __future__ import annotations

import copy
import json
import os
import tempfile
import warnings
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from compresslib._dispatch import require
from compresslib.runtimes import onnx_to_openvino
from compresslib.torch.qdq import QDQDynamicLinear, dynamic_qdq_op, is_int8, reference_model

OPSET = 18


# --------------------------------------------------------------------------- ONNX translation of dynamic_qdq


def _onnx_dynamic_qdq():
    from onnxscript import opset18 as op

    def dynamic_qdq(x):
        q, scale, zp = op.DynamicQuantizeLinear(x)
        return op.DequantizeLinear(q, scale, zp)

    return dynamic_qdq


# --------------------------------------------------------------------------- writers


def _example(model: nn.Module, example_input: Any) -> torch.Tensor:
    if example_input is None:
        recipe = getattr(model, "compresslib_recipe", {})
        signature = recipe.get("example") or {}
        if signature.get("form") == "tensor":  # the example a static/QAT model was calibrated with
            shape = signature["shape"]
            return torch.zeros([max(2, shape[0])] + list(shape[1:]))
        raise ValueError("example_input is required to export this model (an input batch, e.g. x[:1])")
    if not isinstance(example_input, (np.ndarray, torch.Tensor)):
        raise TypeError(f"example_input must be a numpy array or torch.Tensor, got {type(example_input).__name__}")
    ex = torch.as_tensor(np.asarray(example_input) if isinstance(example_input, np.ndarray) else example_input)
    if ex.ndim < 2:
        raise ValueError(f"example_input must have a batch dimension, got shape {tuple(ex.shape)}")
    ex = ex.detach().to("cpu", torch.float32 if ex.is_floating_point() else ex.dtype).clone()
    return ex.repeat(2, *([1] * (ex.ndim - 1))) if ex.shape[0] == 1 else ex  # batch 1 would be specialised


def metadata(model: nn.Module, example: torch.Tensor, name: Optional[str] = None) -> dict:
    """What a runtime file carries about its source: framework, name, kind, input shape, layer statistics."""
    from dataclasses import asdict

    from compresslib.torch.measure import measure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layers = measure(model, example_input=example[:1], latency=False).layers
    return {"framework": "torch", "name": name or type(model).__name__,
            "int8": is_int8(model), "input_shape": [None] + list(example.shape[1:]),
            "layers": [asdict(l) for l in layers]}


def _cpu_copy(model: nn.Module) -> nn.Module:
    devices = {t.device.type for t in list(model.parameters()) + list(model.buffers())}
    return copy.deepcopy(model).cpu() if devices - {"cpu"} else model


def export_onnx(model: nn.Module, path: str, example_input: Any = None, *, full_range: bool = False,
                name: Optional[str] = None) -> dict:
    """Write ``model`` as an ONNX file (QDQ for int8 models, dynamic batch); return its metadata.

    Example:
        >>> export_onnx(cl.zoo.pretrained("lenet5", "torch"), "lenet5.onnx", x[:1])    # doctest: +SKIP
    """
    require("onnx", "onnxscript")
    model = _cpu_copy(model)
    ex = _example(model, example_input)
    ref = reference_model(model, full_range)
    meta = metadata(model, ex, name)
    meta["full_range"] = bool(full_range)
    table = {}
    if any(isinstance(m, QDQDynamicLinear) for m in ref.modules()):
        table[dynamic_qdq_op()._opoverload] = _onnx_dynamic_qdq()
    with warnings.catch_warnings(), _quiet_logs():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(ref, (ex,), dynamo=True, opset_version=OPSET, verbose=False,
                                    dynamic_shapes=({0: torch.export.Dim.DYNAMIC},),
                                    custom_translation_table=table or None, optimize=True)
    program.save(path)
    _finish_onnx(path, meta)
    return meta


def _finish_onnx(path: str, meta: dict) -> None:
    """Drop the exporter's per-node debug metadata (stack traces: half the file) and record ``meta``."""
    import onnx

    proto = onnx.load(path)
    for node in proto.graph.node:
        del node.metadata_props[:]
        node.doc_string = ""
    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "compresslib", json.dumps(meta)
    onnx.save(proto, path)


def export_openvino(model: nn.Module, path: str, example_input: Any = None, *, full_range: bool = False,
                    name: Optional[str] = None) -> dict:
    """Write ``model`` as OpenVINO IR (``path`` ``.xml`` plus ``.bin``), through ONNX; return its metadata."""

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        meta = export_onnx(model, onnx_path, example_input, full_range=full_range, name=name)
        onnx_to_openvino(onnx_path, path, meta)
    return meta


def export_torch(model: nn.Module, path: str, example_input: Any = None, *, full_range: bool = False,
                 name: Optional[str] = None) -> dict:
    """Write ``model`` as a ``torch.export`` program (``.pt2``; int8 as PT2E Q/DQ ops); return its metadata."""
    model = _cpu_copy(model)
    ex = _example(model, example_input)
    ref = reference_model(model, full_range)
    meta = metadata(model, ex, name)
    meta["full_range"] = bool(full_range)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.export.export(ref, (ex,), dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
        torch.export.save(program, path, extra_files={"compresslib.json": json.dumps(meta)})
    return meta


# --------------------------------------------------------------------------- helpers


class _quiet_logs:
    """Silence the torch.onnx exporter's log lines (it warns that torchvision ops are missing)."""

    def __enter__(self):
        import logging

        self._loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
        self._levels = [lg.level for lg in self._loggers]
        for lg in self._loggers:
            lg.setLevel(logging.ERROR)
        return self

    def __exit__(self, *exc):
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)
        return False


__all__ = ["export_onnx", "export_openvino", "export_torch", "metadata"]
