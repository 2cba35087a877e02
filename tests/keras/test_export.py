"""cl.export for Keras models: LiteRT (fp32, int8) and ONNX (tf2onnx) / OpenVINO.

Tolerances: a reloaded file gives identical outputs; fp32 exports match Keras within 1e-4;
the int8 LiteRT file is the quantized model's own flatbuffer, byte for byte.
"""
import numpy as np
import pytest

import compresslib as cl
from compresslib.keras.train import evaluate
from compresslib.deploy import load


@pytest.fixture(scope="module")
def data():
    test = cl.datasets.load_mnist("test", layout="keras")
    train = cl.datasets.load_mnist("train", layout="keras")
    return (test[0][:500], test[1][:500]), train


@pytest.fixture(scope="module")
def lenet():
    return cl.zoo.pretrained("lenet5", framework="keras")


def test_litert_fp32_and_reload(lenet, data, tmp_path):
    test = data[0]
    before = [w.copy() for w in lenet.get_weights()]
    x = test[0][:64].copy()
    rt = cl.export(lenet, tmp_path / "m.tflite", runtime="litert")
    assert all(np.array_equal(a, b) for a, b in zip(before, lenet.get_weights()))
    out = rt(x)
    np.testing.assert_array_equal(x, test[0][:64])
    assert np.abs(out - np.asarray(lenet(x))).max() < 1e-4
    again = load(str(tmp_path / "m.tflite"))
    np.testing.assert_array_equal(again(x), out)
    r_rt, r_k = cl.measure(rt, data=test, runs=3, warmup=1), cl.measure(lenet, data=test, latency=False)
    assert (r_rt.params, r_rt.macs) == (r_k.params, r_k.macs)
    assert r_rt.file_format == ".tflite" and r_rt.accuracy == r_k.accuracy
    assert r_rt.file_bytes == (tmp_path / "m.tflite").stat().st_size


def test_litert_int8_written_as_is(lenet, data, tmp_path):
    q = cl.quantize(lenet, cl.Int8Static(), calibration_data=data[1][0][:128])
    rt = cl.export(q, tmp_path / "q.tflite", runtime="litert")
    assert (tmp_path / "q.tflite").read_bytes() == q.flatbuffer
    np.testing.assert_array_equal(rt(data[0][0][:32]), q(data[0][0][:32]))
    with pytest.raises(ValueError, match="no maintained converter to ONNX"):
        cl.export(q, tmp_path / "q.onnx", runtime="onnxruntime")


def test_onnx_and_openvino_from_keras(lenet, data, tmp_path):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    test = data[0]
    rt = cl.export(lenet, tmp_path / "m.onnx", runtime="onnxruntime")
    assert rt.__compresslib_framework__ == "keras"
    assert np.abs(rt(test[0][:64]) - np.asarray(lenet(test[0][:64]))).max() < 1e-4
    assert evaluate(rt, test) == evaluate(lenet, test)
    r = cl.measure(rt, data=test, runs=3, warmup=1)
    assert r.framework == "keras" and r.file_format == ".onnx" and r.params == cl.measure(lenet, latency=False).params
    pytest.importorskip("openvino")
    ov = cl.export(lenet, tmp_path / "m.xml", runtime="openvino")
    assert np.abs(ov(test[0][:64]) - np.asarray(lenet(test[0][:64]))).max() < 1e-4
    with pytest.raises(ValueError, match="full_range"):
        cl.export(lenet, tmp_path / "m2.onnx", runtime="onnxruntime", full_range=True)
    with pytest.raises(ValueError, match="runtime must be one of"):
        cl.export(lenet, tmp_path / "m.pt2", runtime="torch.export")
