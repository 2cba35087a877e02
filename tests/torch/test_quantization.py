"""Torch quantization: every mode, its accuracy and size, errors, QAT, save/load.

Device-parametrized (``torch_device``: CPU always, CUDA where present) wherever the
mode runs on that device; the CPU-only int8 modes assert their clear error on CUDA.
"""
import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.core import quant as cq
from compresslib.torch import quantization as tq
from compresslib.torch.train import evaluate, fit, predict


@pytest.fixture(scope="module")
def data():
    test = cl.datasets.load_mnist("test", layout="torch")
    train = cl.datasets.load_mnist("train", layout="torch")
    return (test[0][:1000], test[1][:1000]), train


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="torch")


@pytest.fixture(scope="module")
def lenet():
    return cl.zoo.pretrained("lenet5", framework="torch")


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _on(model, device):
    """A copy of a (module-scoped) model on ``device``: ``Module.to`` would move the shared fixture."""
    return copy.deepcopy(model).to(device)


def _devices(module):
    return {t.device.type for t in list(module.parameters()) + list(module.buffers())}


_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")


def test_static_resnet_quantizes_residual_add(resnet, data, torch_device):
    test, train = data
    if torch_device == "cuda":  # torch's int8 kernels are CPU-only: a clear error naming the argument
        with pytest.raises(ValueError, match=r"model: Int8Static runs on CPU only.*on cuda"):
            cl.quantize(_on(resnet, "cuda"), cl.Int8Static(), calibration_data=train[0][:16])
        return
    before = _state(resnet)
    q = cl.quantize(resnet, cl.Int8Static(per_channel=True), calibration_data=train[0][:256])
    assert all(torch.equal(before[k], v) for k, v in resnet.state_dict().items())  # input untouched
    assert "quantized.add_relu" in q.code  # the residual + runs in int8
    kinds = {type(m).__module__ for m in q.modules()}
    assert "torch.ao.nn.intrinsic.quantized.modules.conv_relu" in kinds  # Conv-BN-ReLU fused
    drop = evaluate(resnet, test) - evaluate(q, test)
    assert drop <= 0.01
    w = q.layer1.conv1.weight()
    assert w.qscheme() == torch.per_channel_affine and w.int_repr().dtype == torch.int8
    assert (w.q_per_channel_zero_points() == 0).all()  # symmetric: zero point 0 in every channel


@pytest.mark.parametrize("observer", ["minmax", "moving_average", "percentile", "mse"])
def test_static_observers(lenet, data, observer):
    test, train = data
    q = cl.quantize(lenet, cl.Int8Static(observer=observer), calibration_data=train[0][:128])
    assert evaluate(lenet, test) - evaluate(q, test) <= 0.01


def test_dynamic_linear_only_with_one_warning(lenet, data, torch_device):
    test, _ = data
    if torch_device == "cuda":  # refused before any work, so no "left in float" warning either
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match=r"model: Int8Dynamic runs on CPU only.*on cuda"):
                cl.quantize(_on(lenet, "cuda"), cl.Int8Dynamic())
        return
    with pytest.warns(UserWarning, match=r"left in float.*0 \(Conv2d\)") as rec:
        q = cl.quantize(lenet, cl.Int8Dynamic())
    assert len([r for r in rec if "left in float" in str(r.message)]) == 1
    assert sum(type(m).__module__.startswith("torch.ao.nn.quantized.dynamic") for m in q.modules()) == 3
    assert abs(evaluate(lenet, test) - evaluate(q, test)) <= 0.005


@pytest.mark.parametrize("bits,group", [(8, None), (8, 16), (4, 16), (4, None)])
def test_weight_only(torch_device, bits, group):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).to(torch_device)
    x = torch.randn(16, 64, device=torch_device)
    q = cl.quantize(m, cl.WeightOnly(bits=bits, group_size=group))
    y = q(x)
    assert y.device.type == torch_device and y.dtype == torch.float32
    assert _devices(q) == {torch_device}  # packed weights, scales (or torchao tensors) stay on the model's device
    ref, out = m(x).detach().cpu().numpy(), y.detach().cpu().numpy()
    assert cq.sqnr_db(ref, out) > (30 if bits == 8 else 12)
    if bits == 4:
        assert q[0].packed.dtype == torch.uint8 and q[0].packed.numel() == 64 * 32 // 2
    elif group is not None:
        assert q[0].packed.dtype == torch.int8 and q[0].scale.numel() == 32 * 64 // group


def test_weight_only_conv_group_misfit_warns(lenet):
    with pytest.warns(UserWarning, match="group_size 16 does not divide"):
        q = cl.quantize(lenet, cl.WeightOnly(bits=4, group_size=16))
    assert isinstance(q[0], nn.Conv2d)  # fan-in 25: left in float


@pytest.mark.parametrize("config,dtype", [(cl.Float16(), torch.float16), (cl.BFloat16(), torch.bfloat16)])
def test_half(lenet, data, config, dtype, torch_device):
    test, _ = data
    m = _on(lenet, torch_device)
    q = cl.quantize(m, config)
    assert {p.dtype for p in q.parameters()} == {dtype} and _devices(q) == {torch_device}
    assert {p.dtype for p in m.parameters()} == {torch.float32}  # input untouched
    assert abs(evaluate(m, test) - evaluate(q, test)) <= 0.005


def test_errors(lenet):
    with pytest.raises(TypeError, match="config"):
        cl.quantize(lenet, cl.Magnitude(0.5))
    with pytest.raises(TypeError, match="prepare_qat"):
        cl.quantize(lenet, cl.QAT())
    with pytest.raises(ValueError, match="calibration_data"):
        cl.quantize(lenet, cl.Int8Static())
    with pytest.raises(ValueError, match="calibration_data"):
        cl.quantize(lenet, cl.Int8Static(), calibration_data=np.zeros((0, 1, 28, 28), np.float32))
    with pytest.raises(ValueError, match="bits"):
        cl.WeightOnly(bits=3)
    with pytest.raises(ValueError, match="weight_bits"):
        cl.QAT(weight_bits=9)
    with pytest.raises(TypeError, match="model"):
        cl.quantize(object(), cl.Int8Dynamic())
    with pytest.raises(TypeError, match="prepare_qat"):
        tq.convert(lenet)
    # CPU-only modes refuse a model elsewhere (the meta device stands in for CUDA on machines without one)
    for config in (cl.Int8Dynamic(), cl.Int8Static()):
        with pytest.raises(ValueError, match=f"model: {type(config).__name__} runs on CPU only.*on meta"):
            cl.quantize(nn.Sequential(nn.Linear(4, 2)).to("meta"), config, calibration_data=np.zeros((2, 4), np.float32))


def test_qat_4bit_trains_and_converts(lenet, data, torch_device):
    """Train with fake-quantizers on the device; convert() always gives a CPU int8 model."""
    test, train = data
    small = (train[0][:2000], train[1][:2000])
    p = cl.prepare_qat(_on(lenet, torch_device), cl.QAT(weight_bits=4, activation_bits=8))
    assert _devices(p) == {torch_device}  # fake-quantizers and observers follow the model
    fit(p, small, epochs=1, lr=5e-4)
    q = cl.convert(p)
    assert _devices(q) == {"cpu"} and _devices(p) == {torch_device}  # the QAT model stays where it was
    ints = q.get_submodule("0").weight().int_repr()
    assert ints.dtype == torch.int8 and ints.min() >= -8 and ints.max() <= 7
    agree = (predict(q, test[0][:64]).argmax(1) == predict(p, test[0][:64]).argmax(1)).mean()
    assert agree == 1.0 if torch_device == "cpu" else agree >= 62 / 64  # CUDA's conv arithmetic differs slightly
    assert evaluate(q, test) >= 0.95


def test_sensitivity_one_layer_at_a_time(lenet, data, torch_device):
    test, _ = data
    m = _on(lenet, torch_device)
    s = tq.sensitivity(m, test, bits=2)
    assert list(s) == ["0", "3", "7", "9", "11"]
    assert all(0 <= a <= 1 for a in s.values())
    assert min(s.values()) < evaluate(m, test)  # 2 bits hurts at least one layer
    f = tq.fake_quantize_weights(m, 2, ["0"])
    assert _devices(f) == {torch_device} and len(torch.unique(f[0].weight[0])) <= 4


def test_weight_only_save_load_round_trip(tmp_path, lenet, data, torch_device):
    """4-bit per-row weights on every layer; a model saved from CUDA loads on CPU."""
    test, _ = data
    m = _on(lenet, torch_device)
    q = cl.quantize(m, cl.WeightOnly(bits=4))
    assert isinstance(q[0], tq.WeightOnlyConv2d) and isinstance(q[11], tq.WeightOnlyLinear)
    assert _devices(q) == {torch_device}
    assert evaluate(m, test) - evaluate(q, test) <= 0.02
    path = tmp_path / "q.clz"
    cl.save(q, path)
    r = cl.load(path)
    assert _devices(r) == {"cpu"}
    r = r.to(torch_device)
    np.testing.assert_array_equal(predict(q, test[0][:64]), predict(r, test[0][:64]))


_KINDS = ["dynamic", "static", "static_percentile_per_tensor", "qat", "torchao_weight_only"]
# the CPU-only modes have no CUDA case here (their error on CUDA is tested above)
_ROUND_TRIPS = [(k, "cpu") for k in _KINDS] + [pytest.param(k, "cuda", marks=_CUDA, id=f"{k}-cuda")
                                               for k in ("qat", "torchao_weight_only")]


@pytest.mark.parametrize("kind,device", _ROUND_TRIPS)
def test_int8_save_load_round_trip(tmp_path, lenet, data, kind, device):
    test, train = data
    m = _on(lenet, device)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "dynamic":
            q = cl.quantize(m, cl.Int8Dynamic())
        elif kind == "static":
            q = cl.quantize(m, cl.Int8Static(), calibration_data=train[0][:64])
        elif kind == "torchao_weight_only":
            q = cl.quantize(m, cl.WeightOnly(bits=8))
        elif kind == "static_percentile_per_tensor":
            q = cl.quantize(m, cl.Int8Static(per_channel=False, observer="percentile"),
                            calibration_data=train[0][:64])
        else:
            p = cl.prepare_qat(m, cl.QAT(weight_bits=4))
            fit(p, (train[0][:128], train[1][:128]), epochs=1)
            q = cl.convert(p)
    where = device if kind == "torchao_weight_only" else "cpu"  # convert() and torch.ao int8 give CPU models
    assert _devices(q) == {where}
    path = tmp_path / "q.clz"
    cl.save(q, path)
    r = cl.load(path)
    assert _devices(r) == {"cpu"}  # load always gives a CPU model
    r = r.to(where)
    np.testing.assert_array_equal(predict(q, test[0][:64]), predict(r, test[0][:64]))
    assert len(cl.io.read_manifest(path)["tensors"]) > 0
