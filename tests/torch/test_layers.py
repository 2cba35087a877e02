"""PointwiseConv2d: an nn.Conv2d that runs as bmm at CPU inference; same numbers on every path."""
import copy

import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.torch.layers import PointwiseConv2d


@pytest.mark.parametrize("bias", [True, False])
def test_same_result_on_every_path(torch_device, bias):
    torch.manual_seed(0)
    conv = nn.Conv2d(16, 8, 1, bias=bias).to(torch_device)
    pw = PointwiseConv2d.from_conv(copy.deepcopy(conv))
    x = torch.randn(4, 16, 7, 9, device=torch_device)
    with torch.no_grad():
        ref = conv(x)
        torch.testing.assert_close(pw(x), ref, atol=1e-5, rtol=1e-5)                       # bmm path (CPU)
        torch.testing.assert_close(pw(x.contiguous(memory_format=torch.channels_last)), ref, atol=1e-5, rtol=1e-5)
    y = pw(x.requires_grad_())                                                                # training: conv path
    torch.testing.assert_close(y, ref, atol=1e-5, rtol=1e-5)
    y.sum().backward()
    assert pw.weight.grad is not None and x.grad.shape == x.shape


def test_is_a_conv_and_validates():
    pw = PointwiseConv2d(3, 5, bias=False)
    assert isinstance(pw, nn.Conv2d) and pw.kernel_size == (1, 1) and pw.bias is None
    assert set(pw.state_dict()) == {"weight"}
    with pytest.raises(ValueError, match="conv must be 1×1"):
        PointwiseConv2d.from_conv(nn.Conv2d(3, 5, 3))
    with pytest.raises(ValueError, match="conv must be 1×1"):
        PointwiseConv2d.from_conv(nn.Conv2d(3, 5, 1, stride=2))
    with pytest.raises(TypeError, match="conv must be an nn.Conv2d"):
        PointwiseConv2d.from_conv(nn.Linear(3, 5))


def test_decomposed_resnet_folds_saves_and_prunes(tmp_path):
    m = cl.zoo.pretrained("resnet8", framework="torch")
    d = cl.decompose(m, cl.Tucker(ranks=(8, 8)), layers=["layer1.conv1", "layer2.conv2"])
    seq = d.layer1.conv1
    assert [type(c).__name__ for c in seq] == ["PointwiseConv2d", "Conv2d", "PointwiseConv2d"]
    f = cl.fold_batchnorm(d)                           # the BN after the last 1×1 folds into it
    assert isinstance(f.layer1.bn1, nn.Identity) and f.layer1.conv1[2].bias is not None
    x = torch.as_tensor(cl.datasets.load_mnist("test", layout="torch")[0][:8])
    with torch.no_grad():
        torch.testing.assert_close(f(x), d(x), atol=1e-4, rtol=1e-4)
    cl.save(f, tmp_path / "t.clz")
    back = cl.load(tmp_path / "t.clz")
    assert type(back.layer1.conv1[0]) is PointwiseConv2d
    with torch.no_grad():
        assert torch.equal(back(x), f(x))
    p = cl.prune(d, cl.Structured(0.5), example_input=x[:1])     # Torch-Pruning sees ordinary convs
    assert sum(q.numel() for q in p.parameters()) < sum(q.numel() for q in d.parameters())
    with torch.no_grad():
        assert p(x).shape == (8, 10)
