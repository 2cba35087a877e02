"""Deployment: write a model to a runtime file, load runtime files, measure runtime models.

* :func:`export` (``cl.export``, in ``compresslib.deploy.exporting``): a model of either framework
  written for ONNX Runtime, OpenVINO, ``torch.export`` or LiteRT, loaded back as a runtime model;
* :func:`load`: an exported file as a runtime model (:mod:`compresslib.deploy.models`);
* :func:`measure`: what ``cl.measure`` does with a runtime model (:mod:`compresslib.deploy.measure`).

Every runtime model is a :class:`compresslib.runtimes.RuntimeModel` (Keras's ``LiteRTModel``
included). The backends' writers (``compresslib/<framework>/export.py``) sit below this package and
never import it.

Example:
    >>> import compresslib as cl
    >>> cl.export is export
    True
    >>> RUNTIMES["keras"]
    ('litert', 'onnxruntime', 'openvino')
"""
from __future__ import annotations

from compresslib.deploy.exporting import RUNTIMES, export
from compresslib.deploy.measure import measure
from compresslib.deploy.models import OnnxRuntimeModel, OpenVINOModel, TorchExportModel, load
from compresslib.runtimes import RUNTIME_SUFFIX, RuntimeModel, is_runtime_model, onnx_to_openvino

__all__ = ["export", "load", "measure", "RUNTIMES", "RUNTIME_SUFFIX", "RuntimeModel", "OnnxRuntimeModel",
           "OpenVINOModel", "TorchExportModel", "is_runtime_model", "onnx_to_openvino"]
