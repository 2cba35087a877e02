"""The runtimes' own int8 quantizers, as a user of each would call them: the peers compresslib is measured
against (``bench/deploy.py``, ``bench/pareto.py``, chapter 9).

Each takes the original and the same calibration inputs compresslib gets, and writes what the runtime then
loads (:func:`compresslib.deploy.load` reads every one of them):

* :func:`ort_quantize_static`: ONNX Runtime's ``quantize_static`` (QDQ, per channel, uint8 activations);
* :func:`nncf_int8`: NNCF's ``nncf.quantize`` of the fp32 ONNX file, saved as OpenVINO IR (needs ``nncf``,
  see ``bench/requirements-peers.txt``);
* :func:`litert_int8`: TensorFlow's LiteRT converter, full-integer int8 with a representative data set and
  float input/output, as its documentation recommends (no bias correction).

Example:
    >>> import numpy as np, compresslib as cl                                            # doctest: +SKIP
    >>> cal = np.random.rand(64, 1, 28, 28).astype(np.float32)                          # doctest: +SKIP
    >>> cl.export(model, "fp32.onnx", "onnxruntime", example_input=cal[:1])             # doctest: +SKIP
    >>> ort_quantize_static("fp32.onnx", "peer.onnx", cal)                               # doctest: +SKIP
    >>> peer = cl.deploy.load("peer.onnx")                                               # doctest: +SKIP
"""
from __future__ import annotations

from typing import Any


def ort_quantize_static(fp_onnx: str, path: str, cal: Any) -> None:
    """ONNX Runtime's own static int8 of ``fp_onnx`` written to ``path``: QDQ, per channel, uint8 activations,
    calibrated one image at a time on ``cal`` (the ORT peer of the deploy and Pareto benches)."""
    import warnings

    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            name_in = ort.InferenceSession(fp_onnx, providers=["CPUExecutionProvider"]).get_inputs()[0].name
            self.it = iter([{name_in: cal[i:i + 1]} for i in range(len(cal))])

        def get_next(self):
            return next(self.it, None)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_static(fp_onnx, path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def nncf_int8(fp_onnx: str, path: str, cal: Any) -> None:
    """NNCF's int8 of ``fp_onnx`` (read by OpenVINO), calibrated on every image of ``cal``, saved as OpenVINO
    IR at ``path`` (the OpenVINO peer of the deploy and Pareto benches)."""
    import warnings

    import nncf
    import openvino as ov

    ov_model = ov.Core().read_model(fp_onnx)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm = nncf.quantize(ov_model, nncf.Dataset([cal[i:i + 1] for i in range(len(cal))]),
                           subset_size=len(cal))
    ov.save_model(qm, path, compress_to_fp16=False)


def litert_int8(model: Any, cal: Any) -> bytes:
    """LiteRT's own full-integer int8 flatbuffer of the Keras ``model`` (float input and output),
    calibrated one input at a time on ``cal`` (the LiteRT peer of the Pareto bench and chapter 9)."""
    import tempfile
    import warnings

    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([cal[i:i + 1]] for i in range(len(cal)))
        return conv.convert()


__all__ = ["ort_quantize_static", "nncf_int8", "litert_int8"]
