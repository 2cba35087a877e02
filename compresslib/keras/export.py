"""Export Keras 3 models to runtime files: LiteRT (``.tflite``), ONNX (through tf2onnx) and OpenVINO IR.

* LiteRT: a float model converts without optimisations (fp32 flatbuffer); an int8
  :class:`~compresslib.keras.quantization.LiteRTModel` from :func:`compresslib.quantize`
  is already a flatbuffer and is written as it is.
* ONNX: Keras's own ``model.export(path, format="onnx")``, which calls tf2onnx on the
  TensorFlow backend (measured working with the pinned TensorFlow 2.21 and tf2onnx
  1.17). Only float models: LiteRT's int8 flatbuffers have no maintained ONNX converter.
* OpenVINO: the ONNX file converted by ``openvino.convert_model``.

The layer statistics of the source model travel with the file (ONNX metadata,
OpenVINO ``rt_info``, a ``.json`` beside a ``.tflite``), so :func:`compresslib.measure`
reports the same parameters and MACs for the runtime model.

Example:
    >>> import keras
    >>> from compresslib.keras.export import export_litert
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    >>> rt = export_litert(m, "/tmp/compresslib_doctest.tflite")
    >>> rt(np.zeros((3, 4), np.float32)).shape
    (3, 2)
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import asdict
from typing import Any, Optional

import keras
import numpy as np

from compresslib.keras.quantization import LiteRTModel
from compresslib._dispatch import require
from compresslib.runtimes import onnx_to_openvino


def _check(model: Any) -> None:
    if not (isinstance(model, keras.Model) or isinstance(model, LiteRTModel)):
        raise TypeError(f"model must be a Keras model or a LiteRTModel, got {type(model).__name__}")
    if isinstance(model, keras.Model):
        bad = [f"{v.path} ({v.dtype})" for v in model.weights if "float" in str(v.dtype) and str(v.dtype) != "float32"]
        if bad:
            raise ValueError(f"model: weights that are not float32 cannot be exported: {', '.join(bad[:5])}; "
                             "export the float32 model")
        for layer in model.layers:
            if getattr(layer, "quantization_mode", None):
                raise ValueError(f"model: layer {layer.name!r} ({type(layer).__name__}) is quantized by Keras "
                                 f"({layer.quantization_mode}); no runtime reads it: export the float model, or "
                                 "quantize to LiteRT with cl.quantize(model, cl.Int8Static(), ...)")


def metadata(model: Any, name: Optional[str] = None) -> dict:
    """Framework, name, input shape and layer statistics of ``model`` (carried by the runtime file)."""
    from compresslib.keras.measure import layer_stats

    shape = getattr(model, "input_shape", None)
    return {"framework": "keras", "name": name or getattr(model, "name", type(model).__name__),
            "int8": isinstance(model, LiteRTModel),
            "input_shape": list(shape) if isinstance(shape, tuple) else None,
            "layers": [asdict(l) for l in layer_stats(model)]}


def _called(model: keras.Model) -> keras.Model:
    """Keras's ONNX export needs a model that has been called once; a fresh model is called on zeros."""
    shape = model.input_shape
    if not isinstance(shape, tuple) or any(d is None for d in shape[1:]):
        raise ValueError("model: a fixed input shape (besides the batch) is needed to export")
    model(np.zeros((1,) + tuple(shape[1:]), np.float32))
    return model


def litert_flatbuffer(model: keras.Model) -> bytes:
    """The float32 LiteRT flatbuffer of ``model`` (no optimisations: weights and math stay float32)."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:  # Keras 3 variables are frozen through a SavedModel
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.export(tmp, format="tf_saved_model", verbose=False)
            return tf.lite.TFLiteConverter.from_saved_model(tmp).convert()


def export_litert(model: Any, path: str, name: Optional[str] = None) -> LiteRTModel:
    """Write ``model`` as a ``.tflite`` file (fp32, or the int8 LiteRTModel's own flatbuffer); return it loaded."""
    _check(model)
    meta = metadata(model, name)
    flat = model.flatbuffer if isinstance(model, LiteRTModel) else litert_flatbuffer(model)
    with open(path, "wb") as fh:
        fh.write(flat)
    with open(os.fspath(path) + ".json", "w") as fh:
        json.dump(meta, fh)
    return load_litert(path)


def load_litert(path: str) -> LiteRTModel:
    """A ``.tflite`` file as a :class:`LiteRTModel` (layer statistics from the ``.json`` beside it, if any)."""
    meta = {}
    side = os.fspath(path) + ".json"
    if os.path.isfile(side):
        with open(side) as fh:
            meta = json.load(fh)
    from compresslib.report import LayerStats

    with open(path, "rb") as fh:
        flat = fh.read()
    return LiteRTModel(flat, name=meta.get("name", os.path.basename(os.fspath(path))),
                       stats=[LayerStats(**d) for d in meta.get("layers", [])])


def export_onnx(model: Any, path: str, name: Optional[str] = None) -> dict:
    """Write a float Keras model as ONNX (Keras's exporter, tf2onnx underneath; dynamic batch); return its metadata."""
    _check(model)
    if isinstance(model, LiteRTModel):
        raise ValueError("model: a LiteRT int8 model has no maintained converter to ONNX; export it with "
                         "runtime='litert', or export the float Keras model to ONNX")
    require("tf2onnx")
    onnx = require("onnx")
    meta = metadata(model, name)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        raw = os.path.join(tmp, "model.onnx")
        _called(clone).export(raw, format="onnx", verbose=False)
        proto = onnx.load(raw)
    entry = proto.metadata_props.add()
    entry.key, entry.value = "compresslib", json.dumps(meta)
    onnx.save(proto, path)
    return meta


def export_openvino(model: Any, path: str, name: Optional[str] = None) -> dict:
    """Write a float Keras model as OpenVINO IR (through ONNX); return its metadata."""

    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = os.path.join(tmp, "model.onnx")
        meta = export_onnx(model, onnx_path, name)
        onnx_to_openvino(onnx_path, path, meta)
    return meta


__all__ = ["export_litert", "export_onnx", "export_openvino", "load_litert", "litert_flatbuffer", "metadata"]
