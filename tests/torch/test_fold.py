"""PyTorch BatchNorm folding: same outputs in eval mode, no BN left, residual model, warnings, save/load."""
import copy

import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.torch.fold import batchnorm_pairs


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", framework="torch").eval()


def test_resnet_folded_equals_original(resnet, torch_device):
    m = copy.deepcopy(resnet).to(torch_device)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    f = cl.fold_batchnorm(m)
    assert sum(isinstance(x, nn.BatchNorm2d) for x in f.modules()) == 0
    assert sum(isinstance(x, nn.BatchNorm2d) for x in m.modules()) == 9        # untouched
    pairs, skipped = batchnorm_pairs(m)
    assert len(pairs) == 9 and not skipped
    assert ("layer2.shortcut.0", "layer2.shortcut.1") in pairs                 # the residual shortcut
    x = torch.randn(16, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        torch.testing.assert_close(f(x), m(x), atol=1e-5, rtol=1e-4)
    for k, v in m.state_dict().items():
        assert torch.equal(v, before[k])
    # 9 BNs held 4 vectors each (2 parameters); the convs gained a bias each
    params = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    assert params(m) - params(f) == sum(bn.num_features for bn in m.modules() if isinstance(bn, nn.BatchNorm2d))


def test_linear_and_bias_and_non_affine():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 4),
                      nn.BatchNorm1d(4, affine=False))
    m.train()
    for _ in range(5):                                      # non-trivial running statistics
        m(torch.randn(32, 6) * 3 + 1)
    m.eval()
    f = cl.fold_batchnorm(m)
    assert [type(x).__name__ for x in f] == ["Linear", "Identity", "ReLU", "Linear", "Identity"]
    x = torch.randn(7, 6)
    with torch.no_grad():
        torch.testing.assert_close(f(x), m(x), atol=1e-5, rtol=1e-5)
    assert f.training is False


def test_unfoldable_bn_warns_once_and_stays():
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3), nn.BatchNorm2d(4)).eval()
    with pytest.warns(UserWarning, match=r"left 1 BatchNorm layer\(s\) unfolded: 2: its input is not a Conv"):
        f = cl.fold_batchnorm(m)
    assert isinstance(f[2], nn.BatchNorm2d) and isinstance(f[4], nn.Identity)
    x = torch.randn(2, 1, 9, 9)
    with torch.no_grad():
        torch.testing.assert_close(f(x), m(x), atol=1e-5, rtol=1e-5)


def test_no_bn_no_change():
    m = cl.zoo.pretrained("lenet5", framework="torch")
    import warnings

    with pytest.warns(UserWarning, match="comes back unchanged: it has no BatchNorm layer"):
        f = cl.fold_batchnorm(m)
    for (k, a), (_, b) in zip(m.state_dict().items(), f.state_dict().items()):
        assert torch.equal(a, b), k


def test_bad_input():
    with pytest.raises(TypeError, match="model must be"):
        cl.fold_batchnorm([1, 2])


def test_save_load_and_measure(resnet, tmp_path, torch_device):
    f = cl.fold_batchnorm(copy.deepcopy(resnet).to(torch_device))
    assert {p.device.type for p in f.parameters()} == {torch_device}  # folded weights and new biases
    cl.save(f, tmp_path / "f.clz")
    back = cl.load(tmp_path / "f.clz").eval()
    assert {p.device.type for p in back.parameters()} == {"cpu"}  # load gives a CPU model
    x = torch.randn(2, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        assert torch.equal(back.to(torch_device)(x), f(x))
    r0 = cl.measure(resnet, example_input=x, latency=False)
    r1 = cl.measure(f, example_input=x, latency=False)
    assert r1.params < r0.params and r1.macs <= r0.macs and r1.device.startswith(torch_device)
