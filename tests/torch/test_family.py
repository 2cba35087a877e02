"""The residual families in PyTorch: folding, structured pruning and training on every device."""
import warnings

import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.torch import models as tm


def _randomized(name, seed=0):
    model = tm.build(name)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
    return model.eval()


@pytest.mark.parametrize("name", ["resnet20_w16", "resnet20_w16_plain", "resnet11_w8_bottleneck", "invres_x0.5"])
def test_folding_family_members(name, torch_device):
    m = _randomized(name).to(torch_device)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every BN follows a conv (depthwise ones too): no warning
        f = cl.fold_batchnorm(m)
    assert sum(isinstance(x, nn.BatchNorm2d) for x in f.modules()) == 0
    x = torch.rand(8, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        ref, out = m(x), f(x)
    assert (out - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())
    assert all(torch.equal(v, before[k]) for k, v in m.state_dict().items())


class _PreActivation(nn.Module):
    """A BN after the residual add (the seed article's layout): no single conv to fold it into."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)

    def forward(self, x):
        return self.bn2(self.conv2(self.bn(self.conv(x) + x)))


def test_bn_after_add_stays_with_one_warning_naming_it(torch_device):
    m = _PreActivation().to(torch_device).eval()
    with torch.no_grad():
        m.bn.running_mean.uniform_(-1, 1)
        m.bn2.running_var.uniform_(0.5, 2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        f = cl.fold_batchnorm(m)
    messages = [str(w.message) for w in caught if "fold_batchnorm" in str(w.message)]
    assert len(messages) == 1 and "bn: its input is not a Conv/Linear output" in messages[0]
    assert "bn2" not in messages[0]
    assert isinstance(f.bn, nn.BatchNorm2d) and isinstance(f.bn2, nn.Identity)
    x = torch.rand(2, 4, 6, 6, device=torch_device)
    with torch.no_grad():
        torch.testing.assert_close(f(x), m(x), atol=1e-5, rtol=1e-5)


def test_no_batchnorm_gives_an_equal_copy(torch_device):
    m = tm.build("lenet5").to(torch_device).eval()
    with pytest.warns(UserWarning, match="comes back unchanged: it has no BatchNorm"):
        f = cl.fold_batchnorm(m)
    assert f is not m
    assert all(torch.equal(a, b) and a.data_ptr() != b.data_ptr()
               for a, b in zip(m.state_dict().values(), f.state_dict().values()))
    x = torch.rand(3, 1, 28, 28, device=torch_device)
    with torch.no_grad():
        assert torch.equal(f(x), m(x))


def test_structured_pruning_keeps_shortcut_channels_coupled():
    m = _randomized("resnet20_w16")
    p = cl.prune(m, cl.Structured(0.5), example_input=torch.zeros(1, 1, 28, 28))
    # every block of a stage adds its output to the same shortcut: one channel count per stage
    for stage in ("layer1", "layer2", "layer3"):
        counts = {p.get_submodule(f"{stage}.{i}.conv2").out_channels for i in range(3)}
        assert len(counts) == 1
    assert p.layer1[0].conv2.out_channels == p.stem.conv.out_channels == 8
    assert p.layer3[0].conv1.out_channels == 32
    with torch.no_grad():
        assert p(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert sum(x.numel() for x in p.parameters()) < 0.3 * sum(x.numel() for x in m.parameters())


def test_family_member_trains(torch_device):
    from compresslib.torch.train import fit

    x, y = cl.datasets.load_mnist("train", layout="torch")
    m = tm.build("resnet8_w8").to(torch_device)
    losses = fit(m, (x[:1024], y[:1024]), epochs=3, batch_size=64, lr=2e-3)
    # from ~2.3 (chance); eval-mode accuracy is not asserted: after 48 steps the BN running
    # averages still lag behind the weights
    assert losses[2] < losses[1] < losses[0] < 2.4 and losses[2] < 1.6


@pytest.mark.parametrize("name", ["resnet20_w16_bottleneck", "invres_x0.5"])
def test_family_member_saves_and_loads(name, tmp_path):
    m = _randomized(name)
    cl.save(m, str(tmp_path / "m.clz"))
    again = cl.load(str(tmp_path / "m.clz"))
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(again(x), m(x))
    assert again.arch_name == name and again.spec == m.spec  # still knows what it is: transfer works on it
    assert cl.transfer(again, framework="keras").name == name
