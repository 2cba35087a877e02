"""cl.export for PyTorch models: ONNX Runtime, OpenVINO, torch.export; int8 parity with compresslib's integers.

Tolerances (stated per runtime, asserted below):
* a reloaded file gives *identical* outputs to the runtime model ``cl.export`` returned (same file, same runtime);
* fp32 exports match the eager torch model within 1e-4 (float summation order);
* int8 exports hold exactly compresslib's weight integers, weight scales and activation scales and
  zero points; their logits stay within 3 output quantization steps of torch's int8 model
  (runtimes round the int32 accumulators and the residual add differently) and agree on ≥ 99 % of argmaxes.
"""
import copy
import sys
import warnings

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.deploy import load
from compresslib.torch import export as tex
from compresslib.torch import qdq
from compresslib.torch.train import evaluate

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


@pytest.fixture(scope="module")
def data():
    test = cl.datasets.load_mnist("test", layout="torch")
    train = cl.datasets.load_mnist("train", layout="torch")
    return (test[0][:500], test[1][:500]), train


@pytest.fixture(scope="module")
def lenet():
    return cl.zoo.pretrained("lenet5", framework="torch")


@pytest.fixture(scope="module")
def lenet_int8(lenet, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cl.quantize(lenet, cl.Int8Static(), calibration_data=data[1][0][:256])


def _state(model):
    return {k: (v.int_repr() if v.is_quantized else v).clone() for k, v in model.state_dict().items()
            if isinstance(v, torch.Tensor)}


def _same_state(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_fp32_onnx_matches_torch_and_reloads_identically(lenet, data, tmp_path):
    test = data[0]
    x = test[0][:64].copy()
    before = _state(lenet)
    rt = cl.export(lenet, tmp_path / "lenet5.onnx", runtime="onnxruntime", example_input=test[0][:1])
    assert _same_state(before, _state(lenet))                       # input model untouched
    out = rt(x)
    np.testing.assert_array_equal(x, test[0][:64])                  # input batch untouched
    with torch.no_grad():
        ref = lenet(torch.as_tensor(x)).numpy()
    assert out.shape == (64, 10) and np.abs(out - ref).max() < 1e-4
    again = load(str(tmp_path / "lenet5.onnx"))
    np.testing.assert_array_equal(again(x), out)                    # reload: identical
    assert again.__compresslib_framework__ == "torch" and again.__compresslib_runtime__ == "onnxruntime"
    # measured like the torch model: same parameters and MACs, the ONNX file's bytes, same accuracy
    r_rt = cl.measure(rt, data=test, runs=3, warmup=1)
    r_pt = cl.measure(lenet, data=test, latency=False)
    assert (r_rt.params, r_rt.macs, r_rt.nonzero_params) == (r_pt.params, r_pt.macs, r_pt.nonzero_params)
    assert r_rt.file_format == ".onnx" and r_rt.file_bytes == (tmp_path / "lenet5.onnx").stat().st_size
    assert r_rt.accuracy == r_pt.accuracy == evaluate(rt, test)
    assert r_rt.latency_ms > 0 and r_rt.batch_size == 32
    table = cl.compare([r_pt, r_rt])
    assert table.rows[1]["size_ratio"] == pytest.approx(r_pt.file_bytes / r_rt.file_bytes)


def _onnx_initializers(path):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(path))
    return {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}, proto


def test_int8_static_onnx_carries_compresslibs_integers(lenet_int8, data, tmp_path):
    test = data[0]
    rt = cl.export(lenet_int8, tmp_path / "q.onnx", runtime="onnxruntime")
    inits, proto = _onnx_initializers(tmp_path / "q.onnx")
    qlayers = {n: m for n, m in lenet_int8.named_modules() if qdq.quantized_kind(m) in
               ("conv", "conv_relu", "linear", "linear_relu")}
    assert qlayers
    dq_of = {n.input[0]: n for n in proto.graph.node if n.op_type == "DequantizeLinear"}
    for name, m in qlayers.items():
        key = name.replace(".", "_") + ".weight_int8"
        match = [k for k in inits if k.endswith(key)]
        assert match, f"no int8 initializer for {name}"
        np.testing.assert_array_equal(inits[match[0]], m.weight().int_repr().numpy())     # the same integers
        scale = inits[dq_of[match[0]].input[1]]                                          # and the same scales
        np.testing.assert_array_equal(scale, m.weight().q_per_channel_scales().float().numpy())
    # every activation scale/zero point in the file is one torch calibrated
    q_nodes = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    torch_scales = {round(float(m.scale), 9) for m in qlayers.values()}
    file_scales = {round(float(inits[n.input[1]]), 9) for n in q_nodes if n.input[1] in inits}
    assert torch_scales <= file_scales
    out = rt(test[0])
    with torch.no_grad():
        ref = lenet_int8(torch.as_tensor(test[0])).numpy()
    step = float(qlayers[list(qlayers)[-1]].scale)
    assert np.abs(out - ref).max() <= 3 * step + 1e-6
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.99


def test_int8_full_range_uses_256_levels(lenet_int8, data, tmp_path):
    ref = qdq.reference_model(lenet_int8, full_range=True)
    same = qdq.reference_model(lenet_int8)
    s_full = [m.scale for m in ref.modules() if isinstance(m, qdq.QDQConv2d)]
    s_same = [m.scale for m in same.modules() if isinstance(m, qdq.QDQConv2d)]
    np.testing.assert_allclose(s_full, np.array(s_same) * 127 / 255, rtol=1e-6)
    x = torch.as_tensor(data[0][0][:200])
    with torch.no_grad():
        assert (ref(x).argmax(1) == lenet_int8(x).argmax(1)).float().mean() >= 0.98


def test_int8_openvino_runs_the_qdq_file(lenet_int8, lenet, data, tmp_path):
    pytest.importorskip("openvino")
    test = data[0]
    rt = cl.export(lenet_int8, tmp_path / "q.xml", runtime="openvino")
    assert (tmp_path / "q.bin").stat().st_size > 0
    acc_rt, acc_q = evaluate(rt, test), evaluate(lenet_int8, test)
    assert abs(acc_rt - acc_q) <= 0.01
    again = load(str(tmp_path / "q.xml"))
    np.testing.assert_array_equal(again(test[0][:32]), rt(test[0][:32]))
    r = cl.measure(rt, example_input=test[0][:8], runs=3, warmup=1)
    assert r.file_format == ".xml" and r.params == cl.measure(lenet, example_input=test[0][:1], latency=False).params


def test_dynamic_int8_keeps_weight_integers(data, tmp_path):
    m = cl.zoo.pretrained("lenet300_100", framework="torch")
    d = cl.quantize(m, cl.Int8Dynamic(per_channel=True))
    rt = cl.export(d, tmp_path / "d.onnx", runtime="onnxruntime", example_input=data[0][0][:1])
    inits, proto = _onnx_initializers(tmp_path / "d.onnx")
    assert "DynamicQuantizeLinear" in {n.op_type for n in proto.graph.node}
    ints = [v for k, v in inits.items() if k.endswith("weight_int8")]
    torch_ints = [mod.weight().int_repr().numpy() for mod in d.modules() if qdq.quantized_kind(mod) == "dynamic_linear"]
    assert len(ints) == len(torch_ints) == 3
    for a in torch_ints:
        assert any(b.shape == a.shape and np.array_equal(a, b) for b in ints)
    x = data[0][0][:200]
    with torch.no_grad():
        ref = d(torch.as_tensor(x)).numpy()
    out = rt(x)
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.999


def test_pruned_folded_and_low_rank_models_export(data, tmp_path):
    test = data[0]
    resnet = cl.zoo.pretrained("resnet8", framework="torch")
    small = cl.fold_batchnorm(cl.prune(resnet, cl.Structured(0.5), example_input=test[0][:1]))
    low = cl.decompose(cl.zoo.pretrained("lenet5", framework="torch"), cl.SVD(ratio=0.5))
    for i, m in enumerate([small, low]):
        rt = cl.export(m, tmp_path / f"m{i}.onnx", runtime="onnxruntime", example_input=test[0][:1])
        with torch.no_grad():
            ref = m(torch.as_tensor(test[0][:64])).numpy()
        assert np.abs(rt(test[0][:64]) - ref).max() < 1e-4
        assert cl.measure(rt, example_input=test[0][:1], latency=False).params == \
            cl.measure(m, example_input=test[0][:1], latency=False).params


def test_torch_export_int8_program(lenet_int8, data, tmp_path):
    test = data[0]
    rt = cl.export(lenet_int8, tmp_path / "q.pt2", runtime="torch.export", compile=False)
    assert rt.__compresslib_runtime__ == "torch.export"
    with torch.no_grad():
        ref = lenet_int8(torch.as_tensor(test[0][:200])).numpy()
    out = rt(test[0][:200])
    assert (out.argmax(1) == ref.argmax(1)).mean() >= 0.99
    again = load(str(tmp_path / "q.pt2"), compile=False)
    np.testing.assert_array_equal(again(test[0][:16]), rt(test[0][:16]))
    names = {n.target.__name__ if hasattr(n.target, "__name__") else str(n.target)
             for n in rt.program.graph.nodes if n.op == "call_function"}
    assert any("quantize_per_tensor" in n for n in names) and any("dequantize_per_channel" in n for n in names)


def test_unsupported_layer_is_named(lenet, tmp_path, data):
    w4 = cl.quantize(lenet, cl.WeightOnly(bits=4, group_size=None))
    with pytest.raises(ValueError, match=r"'0' \(WeightOnlyConv2d: compresslib's packed weight-only layer\); '3'"):
        cl.export(w4, tmp_path / "w4.onnx", runtime="onnxruntime", example_input=data[0][0][:1])
    assert not (tmp_path / "w4.onnx").exists()


def test_bad_arguments(lenet, tmp_path, data):
    x1 = data[0][0][:1]
    with pytest.raises(ValueError, match="runtime must be one of"):
        cl.export(lenet, tmp_path / "m.tflite", runtime="litert", example_input=x1)
    with pytest.raises(ValueError, match=r"path must end with '\.onnx'"):
        cl.export(lenet, tmp_path / "m.xml", runtime="onnxruntime", example_input=x1)
    with pytest.raises(ValueError, match="example_input is required"):
        cl.export(lenet, tmp_path / "m.onnx", runtime="onnxruntime")
    with pytest.raises(TypeError, match="model must be"):
        cl.export(object(), tmp_path / "m.onnx")


def test_missing_runtime_names_the_extra(lenet, tmp_path, monkeypatch, data):
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(ImportError, match=r"compresslib\[openvino\]"):
        cl.export(lenet, tmp_path / "m.xml", runtime="openvino", example_input=data[0][0][:1])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match=r"compresslib\[onnx\]"):
        cl.export(lenet, tmp_path / "m.onnx", runtime="onnxruntime", example_input=data[0][0][:1])


def test_load_refuses_unknown_suffix(tmp_path):
    p = tmp_path / "m.bin"
    p.write_bytes(b"x")
    with pytest.raises(ValueError, match="cannot tell the runtime"):
        load(str(p))
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "none.onnx"))


def test_reference_model_does_not_change_input(lenet_int8):
    before = copy.deepcopy(lenet_int8.state_dict())
    qdq.reference_model(lenet_int8)
    after = lenet_int8.state_dict()
    for k, v in before.items():
        if isinstance(v, torch.Tensor):
            a = after[k]
            assert torch.equal(v.int_repr() if v.is_quantized else v, a.int_repr() if a.is_quantized else a)
