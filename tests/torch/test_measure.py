import os

import numpy as np
import pytest
import torch
from torch import nn

import compresslib as cl
from compresslib.torch.measure import native_file_bytes


def test_nonzero_count_of_hand_built_sparse_model(torch_device):
    model = nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.Linear(4, 2)).to(torch_device)
    with torch.no_grad():
        model[0].weight.zero_()
        model[0].weight[0, :3] = 1.0          # 3 non-zeros
        model[0].bias.copy_(torch.tensor([0.0, 1.0, 0.0, 2.0]))  # 2 non-zeros
        model[2].weight.fill_(0.5)            # 8
        model[2].bias.zero_()                 # 0
    r = cl.measure(model, example_input=torch.zeros(3, 10), latency=False)
    assert r.params == 10 * 4 + 4 + 4 * 2 + 2 == 54
    assert r.nonzero_params == 3 + 2 + 8
    assert r.sparsity == pytest.approx(1 - 13 / 54)
    assert [(l.name, l.params, l.nonzero_params) for l in r.layers] == [("0", 44, 5), ("2", 10, 8)]


def test_macs_of_known_layers():
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),        # 28*28*4 outputs × 1*9
        nn.Conv2d(4, 8, 3, stride=2, groups=2),  # 13*13*8 outputs × 2*9
        nn.Flatten(), nn.Linear(8 * 13 * 13, 10),
    )
    r = cl.measure(model, example_input=torch.zeros(2, 1, 28, 28), latency=False)
    expected = [28 * 28 * 4 * 9, 13 * 13 * 8 * 2 * 9, 8 * 13 * 13 * 10]
    assert [l.macs for l in r.layers] == expected
    assert r.macs == sum(expected)


def test_reference_model_macs():
    r = cl.measure(cl.zoo.pretrained("lenet5", "torch"), example_input=torch.zeros(1, 1, 28, 28), latency=False)
    # conv1 28*28*6*25, conv2 10*10*16*150, fc 400*120 + 120*84 + 84*10
    assert r.macs == 117600 + 240000 + 48000 + 10080 + 840


def test_file_bytes_equal_the_written_file(tmp_path):
    model = cl.zoo.pretrained("lenet300_100", "torch")
    size, gz, fmt = native_file_bytes(model)
    path = tmp_path / "model.pt"  # torch names the archive folder after the file
    torch.save(model.state_dict(), path)
    assert size == os.path.getsize(path)
    assert 0 < gz < size
    r = cl.measure(model, example_input=torch.zeros(1, 1, 28, 28), latency=False)
    assert r.file_bytes == size and "state_dict" in r.file_format
    assert size > 4 * r.params  # fp32 values plus the container's headers


def test_latency_and_accuracy(torch_device):
    model = cl.zoo.pretrained("lenet5", "torch").to(torch_device)
    data = cl.datasets.load_mnist("test", layout="torch")
    r = cl.measure(model, data=data, batch_size=16, runs=20, warmup=3)
    assert r.latency_ms > 0 and r.latency_spread_ms >= 0 and r.latency_runs == 20
    assert r.batch_size == 16 and r.threads == torch.get_num_threads()
    assert r.device.startswith(torch_device)
    assert r.accuracy >= 0.97


def test_input_model_not_changed():
    model = cl.zoo.pretrained("lenet5", "torch")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cl.measure(model, data=cl.datasets.load_mnist("test", layout="torch"), runs=3, warmup=1)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_bad_input_names_the_argument():
    model = cl.zoo.pretrained("lenet5", "torch")
    with pytest.raises(ValueError, match="data"):
        cl.measure(model, data=cl.datasets.load_mnist("test", layout="keras"))  # NHWC into an NCHW model
    with pytest.raises(ValueError, match="example_input"):
        cl.measure(model, example_input=torch.zeros(1, 3, 5, 5))
    with pytest.raises(ValueError, match="data"):
        cl.measure(model, data=np.zeros((2, 1, 28, 28)))
    with pytest.raises(ValueError, match="data=.*example_input"):
        cl.measure(model)
    with pytest.raises(ValueError, match="batch_size"):
        cl.measure(model, example_input=torch.zeros(1, 1, 28, 28), batch_size=0)


def test_cpu_timing_warms_the_allocator_with_one_bigger_batch():
    from compresslib.torch.measure import time_model

    seen = []

    class Spy(torch.nn.Module):
        def forward(self, x):
            seen.append(x.shape[0])
            return x

    times = time_model(Spy(), torch.zeros(32, 4), runs=5, warmup=2)
    assert seen == [256, 32, 32] + [32] * 5 and len(times) == 5     # one 8× pass, then warm-up and timed runs
    seen.clear()
    time_model(Spy(), torch.zeros(300, 4), runs=1, warmup=1)
    assert seen == [300, 300]                                        # big batches need no extra pass
