"""compresslib.save / load of torch models on any device: the file is device-free and load gives a CPU model.

(tests/test_io.py covers the format itself; it imports Keras, so the CUDA cases live here.)
"""
import copy

import numpy as np
import pytest
import torch

import compresslib as cl


@pytest.fixture(scope="module")
def lenet():
    return cl.zoo.pretrained("lenet5", "torch").eval()


@pytest.fixture(scope="module")
def x(mnist_test):
    return torch.from_numpy(np.ascontiguousarray(mnist_test[0][:32, None]))


def _devices(model):
    return {t.device.type for t in model.state_dict().values()}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_model_from_any_device_loads_on_cpu_with_equal_tensors(tmp_path, lenet, x, torch_device, dtype):
    model = copy.deepcopy(lenet).to(device=torch_device, dtype=dtype)
    cl.save(model, tmp_path / "m.clz")
    loaded = cl.load(tmp_path / "m.clz")
    assert _devices(loaded) == {"cpu"} and _devices(model) == {torch_device}
    for (k, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == dtype and torch.equal(a.cpu(), b), k
    back = loaded.to(torch_device).eval()  # same device, same weights: the same outputs
    with torch.no_grad():
        xb = x.to(device=torch_device, dtype=dtype)
        assert torch.equal(model(xb), back(xb))


def test_pruned_packed_model_from_any_device(tmp_path, lenet, x, torch_device):
    p = cl.prune(copy.deepcopy(lenet).to(torch_device), cl.Magnitude(0.8, scope="global"))
    size = cl.save(p, tmp_path / "p.clz")
    dense = cl.save(lenet, tmp_path / "d.clz")
    assert size < dense / 2  # the zeros were packed whatever the device
    loaded = cl.load(tmp_path / "p.clz")
    assert _devices(loaded) == {"cpu"}
    with torch.no_grad():
        assert torch.equal(p(x.to(torch_device)), loaded.to(torch_device)(x.to(torch_device)))
