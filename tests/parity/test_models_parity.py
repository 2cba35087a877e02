"""The reference models have the same architecture in both frameworks."""
import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.keras import models as km
from compresslib.torch import models as tm


@pytest.mark.parametrize("name", tm.MODEL_NAMES)
def test_same_parameter_count(name):
    torch_params = sum(p.numel() for p in tm.build(name).parameters())
    keras_report = cl.measure(km.build(name), latency=False)
    assert keras_report.params == torch_params
    torch_report = cl.measure(tm.build(name), example_input=torch.zeros(1, 1, 28, 28), latency=False)
    assert torch_report.params == torch_params
    assert torch_report.macs == keras_report.macs


def _keras_name(torch_name: str) -> str:
    """ResNet8 layer names: torch "layer2.shortcut.0" -> keras "layer2_sc_conv", "stem.1" -> "stem_bn"."""
    return (torch_name.replace("shortcut.0", "sc_conv").replace("shortcut.1", "sc_bn")
            .replace("stem.0", "stem_conv").replace("stem.1", "stem_bn").replace(".", "_"))


def _copy_resnet_weights(tmodel, kmodel):
    """Copy torch ResNet8 weights into the Keras twin by layer name (conv OIHW -> HWIO)."""
    copied = 0
    for name, t in tmodel.named_modules():
        if not isinstance(t, (torch.nn.Conv2d, torch.nn.BatchNorm2d, torch.nn.Linear)):
            continue
        k = kmodel.get_layer(_keras_name(name))
        if isinstance(t, torch.nn.Conv2d):
            k.set_weights([t.weight.detach().numpy().transpose(2, 3, 1, 0)])
        elif isinstance(t, torch.nn.BatchNorm2d):
            k.set_weights([v.detach().numpy() for v in (t.weight, t.bias, t.running_mean, t.running_var)])
        else:
            k.set_weights([t.weight.detach().numpy().T, t.bias.detach().numpy()])
        copied += 1
    assert copied == len([l for l in kmodel.layers if l.weights])


def test_resnet_same_function_given_same_weights():
    torch.manual_seed(0)
    tmodel = tm.build("resnet8").eval()
    with torch.no_grad():  # non-trivial BN statistics
        for m in tmodel.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    kmodel = km.build("resnet8")
    _copy_resnet_weights(tmodel, kmodel)
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    with torch.no_grad():
        expected = tmodel(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    got = np.asarray(kmodel(x, training=False))
    np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-4)
