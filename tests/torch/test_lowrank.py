"""PyTorch low-rank decomposition: factors reproduce the truncated weights, cost rule, errors, save/load."""
import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.core import lowrank as L
from compresslib.torch import lowrank as tl_
from compresslib.torch.layers import FactoredConv2d, FactoredLinear
from compresslib.torch.models import build


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="torch").eval()


@pytest.fixture(scope="module")
def digits():
    x, y = cl.datasets.load_mnist("test", layout="torch")
    return x[:500], y[:500]


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_svd_equals_the_truncated_matrix(torch_device):
    torch.manual_seed(0)
    m = build("mlp_wide").to(torch_device).eval()
    before = _state(m)
    d = cl.decompose(m, cl.SVD(rank=64), layers=["1", "3"])
    assert [type(x).__name__ for x in d[3]] == ["Linear", "Linear"]
    assert (d[3][0].in_features, d[3][0].out_features, d[3][0].bias) == (1024, 64, None)
    # the reference: the same model with W replaced by its rank-64 truncation
    ref = copy.deepcopy(m)
    for name in ("1", "3"):
        w = ref.get_submodule(name).weight
        a, b = L.svd_factors(w.detach().cpu().double().numpy(), 64)
        w.data = torch.as_tensor(a @ b, dtype=w.dtype, device=w.device)
    x = torch.randn(8, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        torch.testing.assert_close(d(x), ref(x), atol=1e-4, rtol=1e-4)
        assert (d(x) - m(x)).abs().max() > 1e-3          # and it is an approximation
    for k, v in m.state_dict().items():                 # input untouched
        assert torch.equal(v, before[k])
    params = sum(p.numel() for p in d.parameters())
    assert params == 64 * (784 + 1024) + 1024 + 64 * (1024 + 1024) + 1024 + 1024 * 10 + 10


def test_tucker_equals_the_reconstructed_kernel(resnet, torch_device):
    m = copy.deepcopy(resnet).to(torch_device)
    name = "layer3.conv1"                                    # 3×3, stride 2, 32 -> 64
    d = cl.decompose(m, cl.Tucker(ranks=(16, 24)), layers=[name])
    seq = d.get_submodule(name)
    assert [tuple(c.weight.shape) for c in seq] == [(16, 32, 1, 1), (24, 16, 3, 3), (64, 24, 1, 1)]
    assert seq[1].stride == (2, 2) and seq[1].padding == (1, 1)
    ref = copy.deepcopy(m)
    w = ref.get_submodule(name).weight
    rec = L.tucker2_reconstruct(*L.tucker2(w.detach().cpu().double().numpy(), (16, 24)))
    w.data = torch.as_tensor(rec, dtype=w.dtype, device=w.device)
    x = torch.randn(4, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        torch.testing.assert_close(d(x), ref(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("ranks,shapes", [((32, 24), [(24, 32, 3, 3), (64, 24, 1, 1)]),
                                          ((16, 64), [(16, 32, 1, 1), (64, 16, 3, 3)])])
def test_tucker1_drops_the_full_rank_factor(resnet, torch_device, ranks, shapes):
    m = copy.deepcopy(resnet).to(torch_device)
    name = "layer3.conv1"                                    # 32 -> 64, stride 2
    with torch.no_grad():                                    # a bias, to see it land on the last layer
        m.get_submodule(name).bias = nn.Parameter(torch.randn(64, device=torch_device))
    d = cl.decompose(m, cl.Tucker(ranks=ranks), layers=[name])
    seq = d.get_submodule(name)
    assert [tuple(c.weight.shape) for c in seq] == shapes
    assert [c.bias is not None for c in seq] == [False, True]
    assert next(c for c in seq if c.kernel_size == (3, 3)).stride == (2, 2)
    assert tl_.plan(m, cl.Tucker(ranks=ranks), [name])[name].params_after == sum(c.weight.numel() for c in seq)
    ref = copy.deepcopy(m)
    w = ref.get_submodule(name).weight
    w.data = torch.as_tensor(L.tucker2_reconstruct(*L.tucker2(w.detach().cpu().double().numpy(), ranks)),
                             dtype=w.dtype, device=w.device)
    x = torch.randn(4, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        torch.testing.assert_close(d(x), ref(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("stride,padding", [(1, 1), (2, 1), (1, "same"), (2, 0)])
def test_cp_equals_the_reconstructed_kernel(torch_device, stride, padding):
    if padding == "same" and stride != 1:
        pytest.skip("torch forbids padding='same' with stride")
    torch.manual_seed(0)
    conv = nn.Conv2d(6, 16, (5, 3), stride=stride, padding=padding).to(torch_device)
    seq = tl_.factor_cp(conv, 6)
    assert [c.groups for c in seq] == [1, 6, 6, 1]
    rec = L.cp_reconstruct(*L.cp(conv.weight.detach().cpu().double().numpy(), 6))
    ref = copy.deepcopy(conv)
    ref.weight.data = torch.as_tensor(rec, dtype=torch.float32, device=torch_device)
    x = torch.randn(2, 6, 11, 12, device=torch_device)
    with torch.no_grad():
        torch.testing.assert_close(seq(x), ref(x), atol=1e-4, rtol=1e-4)


def test_full_rank_is_exact_and_refused_ranks_warn_once():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1))
    seq = tl_.factor_tucker(conv[0], (8, 16))          # full ranks: exact (but larger)
    x = torch.randn(2, 8, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(seq(x), conv(x), atol=1e-5, rtol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        d = cl.decompose(conv, cl.Tucker(ranks=(8, 16)))
    assert len(caught) == 1 and "0: ranks (8, 16) cost" in str(caught[0].message)
    assert isinstance(d[0], nn.Conv2d)                      # never made larger
    m = build("mlp_wide")
    with pytest.warns(UserWarning, match=r"5: rank=64 exceeds the 10×1024 matrix"):
        d = cl.decompose(m, cl.SVD(rank=64))
    assert type(d[5]) is nn.Linear and isinstance(d[1], FactoredLinear)


def test_errors_and_filters():
    m = build("lenet5")
    with pytest.raises(ValueError, match="exceeds"):
        cl.decompose(m, cl.Tucker(ranks=(7, 8)), layers=["3"])          # C_in = 6
    with pytest.raises(ValueError, match="no layer named"):
        cl.decompose(m, cl.SVD(rank=4), layers=["fc9"])
    with pytest.raises(ValueError, match="SVD.rank"):
        cl.SVD(rank=0)
    with pytest.raises(ValueError, match="SVD.energy"):
        cl.SVD(energy=1.5)
    with pytest.raises(TypeError, match="config must be one of"):
        cl.decompose(m, cl.Magnitude(0.5))
    with pytest.warns(UserWarning, match="Linear is not a Conv2d"):
        d = cl.decompose(m, cl.Tucker(ranks=(4, 8)), layers=["3", "7"])
    assert isinstance(d[3], FactoredConv2d) and type(d[7]) is nn.Linear
    d = cl.decompose(m, cl.SVD(rank=8), layers=lambda name, mod: mod.in_features == 400)
    assert isinstance(d[7], FactoredLinear) and type(d[9]) is nn.Linear
    plans = tl_.plan(m, cl.SVD(energy=0.5))
    assert set(plans) == {"7", "9", "11"} and all(1 <= p.rank <= 84 for p in plans.values())


def test_save_load_exact(resnet, tmp_path, torch_device):
    d = cl.decompose(copy.deepcopy(resnet).to(torch_device), cl.Tucker(energy=0.8),
                     layers=lambda n, m: m.kernel_size == (3, 3) and m.in_channels > 1)
    assert {p.device.type for p in d.parameters()} == {torch_device}  # the factors follow the model
    path = tmp_path / "d.clz"
    cl.save(d, path)
    back = cl.load(path).eval()
    assert {p.device.type for p in back.parameters()} == {"cpu"}  # load gives a CPU model
    x = torch.randn(3, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        assert torch.equal(back.to(torch_device)(x), d.eval()(x))


def test_finetune_recovers_accuracy(resnet, digits):
    from compresslib.torch.train import evaluate

    base = evaluate(resnet, digits)
    d = cl.decompose(resnet, cl.Tucker(ranks=(4, 4)), layers=["layer2.conv2", "layer3.conv2"])
    low = evaluate(d, digits)
    x, y = cl.datasets.load_mnist("train", layout="torch")
    f = tl_.finetune(d, (x[:1000], y[:1000]), epochs=1, lr=1e-3)
    assert f is not d
    assert evaluate(d, digits) == low                      # the input of finetune is untouched
    assert low < 0.5 < base                                # rank 4 hurts ...
    assert evaluate(f, digits) > low + 0.3                 # ... one short epoch recovers most of it
