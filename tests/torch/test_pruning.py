"""PyTorch pruning: unstructured, N:M, gradual, structured (Torch-Pruning), packed save/load."""
import copy
import os

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.core.schedules import PolynomialDecay
from compresslib.torch import models, pruning, train


@pytest.fixture(scope="module")
def lenet300():
    return cl.zoo.pretrained("lenet300_100", "torch")


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", "torch")


def _weights(m):
    return {n: p.detach().cpu().clone() for n, p in m.state_dict().items()}


def _zeros(module):
    return int((module.weight == 0).sum())


def test_layer_magnitude_exact_per_layer_and_input_untouched(lenet300, torch_device):
    m = copy.deepcopy(lenet300).to(torch_device)
    before = _weights(m)
    p = cl.prune(m, cl.Magnitude(0.8, scope="layer"))
    for name, mod in p.named_modules():
        if isinstance(mod, nn.Linear):
            assert _zeros(mod) == round(0.8 * mod.weight.numel()), name
            assert mod.weight.device.type == torch_device
            assert not mod._forward_pre_hooks and "weight_orig" not in mod._parameters
    after = _weights(m)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_global_magnitude_exact_total(lenet300):
    p = cl.prune(lenet300, cl.Magnitude(0.9, scope="global"))
    linears = [mod for mod in p.modules() if isinstance(mod, nn.Linear)]
    total = sum(mod.weight.numel() for mod in linears)
    assert sum(_zeros(mod) for mod in linears) == round(0.9 * total)
    # global: layers end up with different sparsities
    assert len({round(_zeros(mod) / mod.weight.numel(), 3) for mod in linears}) == 3


def test_same_input_same_masks(lenet300):
    a = cl.prune(lenet300, cl.Magnitude(0.7, scope="global"))
    b = cl.prune(lenet300, cl.Magnitude(0.7, scope="global"))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_nm_two_of_four_and_warning_for_odd_fan_in(torch_device):
    m = models.build("lenet5").to(torch_device)
    with pytest.warns(UserWarning, match=r"NM\(2:4\) skipped .*: 0 \(fan-in 25\), 3 \(fan-in 150\)"):
        p = cl.prune(m, cl.NM(2, 4))
    assert _zeros(p[0]) == 0 and _zeros(p[3]) == 0
    for name, mod in p.named_modules():
        if isinstance(mod, nn.Linear):
            w = mod.weight.detach().cpu().reshape(mod.weight.shape[0], -1, 4)
            assert ((w != 0).sum(-1) <= 2).all(), name
            assert _zeros(mod) == mod.weight.numel() // 2


def test_unsupported_layer_warned_once_by_name():
    m = nn.Sequential(nn.Embedding(10, 8), nn.Flatten(), nn.Linear(8, 4))
    with pytest.warns(UserWarning, match=r"skipped layers of unsupported kinds: 0 \(Embedding\)") as rec:
        p = cl.prune(m, cl.Magnitude(0.5))
    assert len([r for r in rec if "unsupported" in str(r.message)]) == 1
    assert _zeros(p[2]) == 16 and int((p[0].weight == 0).sum()) == 0


def test_gradual_hook_follows_schedule_and_finalize_is_plain(lenet300, mnist_test, tmp_path, torch_device):
    x, y = mnist_test
    xt = x[:, None]
    m = copy.deepcopy(lenet300).to(torch_device)
    schedule = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=12, frequency=4)
    hook = pruning.GradualPruning(cl.Magnitude(0.9, scope="global", schedule=schedule), m)
    seen = []
    train.fit(m, (xt[:1024], y[:1024]), epochs=1, batch_size=64, on_step=lambda mod, s: (hook(mod, s), seen.append(hook.sparsity)))
    assert seen[3] == pytest.approx(schedule(4)) and seen[-1] == pytest.approx(0.9)
    final = hook.finalize(m)
    linears = [mod for mod in final.modules() if isinstance(mod, nn.Linear)]
    total = sum(mod.weight.numel() for mod in linears)
    assert sum(_zeros(mod) for mod in linears) == round(0.9 * total)
    assert train.evaluate(final, (xt, y)) > 0.85
    assert {mask.device.type for mask in hook.masks.values()} == {torch_device}
    path = tmp_path / "g.clz"
    cl.save(final, path)  # no hooks, so it saves


def test_packed_file_shrinks_and_round_trip_is_exact(lenet300, mnist_test, tmp_path):
    x, _ = mnist_test
    p = cl.prune(lenet300, cl.Magnitude(0.9, scope="global"))
    dense_size = cl.save(lenet300, tmp_path / "d.clz")
    size = cl.save(p, tmp_path / "p.clz")
    native = cl.measure(lenet300, example_input=x[:1, None], latency=False).file_bytes
    assert size < dense_size / 6 and native / size > 6
    manifest = cl.io.read_manifest(tmp_path / "p.clz") if hasattr(cl, "io") else None
    from compresslib import io as clio
    encodings = {t["encoding"] for t in clio.read_manifest(tmp_path / "p.clz")["tensors"].values()}
    assert encodings & {"bitmask", "bitmask_z", "csr"}
    q = cl.load(tmp_path / "p.clz")
    xb = torch.from_numpy(x[:64, None])
    with torch.no_grad():
        assert torch.equal(q(xb), p.eval()(xb))
    assert all(torch.equal(a, b) for a, b in zip(q.state_dict().values(), p.state_dict().values()))


def test_structured_resnet_removes_half_the_channels(resnet, mnist_test, torch_device, tmp_path):
    x, y = mnist_test
    m = copy.deepcopy(resnet).to(torch_device)
    before = _weights(m)
    s = cl.prune(m, cl.Structured(0.5), example_input=torch.from_numpy(x[:1, None]))
    assert [s.stem[0].out_channels, s.layer1.conv1.out_channels, s.layer2.conv2.out_channels,
            s.layer3.shortcut[0].out_channels, s.fc.in_features, s.fc.out_features] == [8, 8, 16, 32, 32, 10]
    assert s.layer1.conv2.out_channels == s.stem[0].out_channels  # residual add kept consistent
    r0 = cl.measure(m, example_input=x[:1, None], latency=False)
    r1 = cl.measure(s, example_input=x[:1, None], latency=False)
    assert r1.params < 0.3 * r0.params and r1.macs < 0.3 * r0.macs and r1.file_bytes < 0.35 * r0.file_bytes
    assert all(torch.equal(before[k], v) for k, v in _weights(m).items())  # input untouched
    cl.save(s, tmp_path / "s.clz")
    back = cl.load(tmp_path / "s.clz").to(torch_device)
    xb = torch.from_numpy(x[:16, None]).to(torch_device)
    with torch.no_grad():
        assert torch.equal(back.eval()(xb), s.eval()(xb))


def test_structured_errors():
    m = models.build("lenet5")
    with pytest.raises(ValueError, match="example_input: could not guess an input"):
        cl.prune(nn.Sequential(nn.Conv3d(2, 4, 3), nn.ReLU()), cl.Structured(0.5))
    with pytest.raises(ValueError, match="remove every one of the 6 channels"):
        cl.prune(m, cl.Structured(0.9), example_input=torch.zeros(1, 1, 28, 28))
    with pytest.raises(ValueError, match="Structured.ratio must be in"):
        cl.Structured(1.0)
    with pytest.raises(ValueError, match="ignored_layers: no modules named"):
        cl.prune(m, cl.Structured(0.5), example_input=torch.zeros(1, 1, 28, 28), ignored_layers=["nope"])


def test_structured_ignored_layers_kept():
    m = models.build("lenet5")
    s = cl.prune(m, cl.Structured(0.5), example_input=torch.zeros(1, 1, 28, 28), ignored_layers=["0"])
    assert s[0].out_channels == 6 and s[3].out_channels == 8 and s[7].out_features == 60


def test_sensitivity_scan(lenet300, mnist_test):
    x, y = mnist_test
    data = (x[:500, None], y[:500])
    before = _weights(lenet300)
    curves = pruning.sensitivity(lenet300, data, sparsities=(0.0, 0.99))
    assert sorted(curves) == ["1", "3", "5"]
    base = train.evaluate(lenet300, data)
    assert all(c[0] == base for c in curves.values())
    assert curves["5"][1] < curves["1"][1]  # the small last layer is the sensitive one
    assert all(torch.equal(before[k], v) for k, v in _weights(lenet300).items())
    with pytest.raises(ValueError, match="sparsities must be in"):
        pruning.sensitivity(lenet300, data, sparsities=(1.0,))


@pytest.mark.parametrize("name", ["lenet300_100", "resnet8"])
def test_structured_without_example_input_guesses_one(name):
    m = models.build(name)
    a = cl.prune(m, cl.Structured(0.5))
    b = cl.prune(m, cl.Structured(0.5), example_input=torch.zeros(1, 1, 28, 28))
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
