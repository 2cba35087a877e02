"""Same weights in, same masks and the same pruned function out, in both frameworks."""
from contextlib import nullcontext as _nullcontext

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.keras import models as km
from compresslib.torch import models as tm


def _keras_name(torch_name: str) -> str:
    return (torch_name.replace("shortcut.0", "sc_conv").replace("shortcut.1", "sc_bn")
            .replace("stem.0", "stem_conv").replace("stem.1", "stem_bn").replace(".", "_"))


def _copy_resnet(tmodel, kmodel):
    for name, t in tmodel.named_modules():
        if isinstance(t, torch.nn.Conv2d):
            kmodel.get_layer(_keras_name(name)).set_weights([t.weight.detach().numpy().transpose(2, 3, 1, 0)])
        elif isinstance(t, torch.nn.BatchNorm2d):
            kmodel.get_layer(_keras_name(name)).set_weights(
                [v.detach().numpy() for v in (t.weight, t.bias, t.running_mean, t.running_var)])
        elif isinstance(t, torch.nn.Linear):
            kmodel.get_layer(_keras_name(name)).set_weights([t.weight.detach().numpy().T, t.bias.detach().numpy()])


def _copy_mlp(tmodel, kmodel):
    linears = [m for m in tmodel.modules() if isinstance(m, torch.nn.Linear)]
    dense = [l for l in kmodel.layers if hasattr(l, "kernel")]
    for t, k in zip(linears, dense, strict=True):
        k.set_weights([t.weight.detach().numpy().T, t.bias.detach().numpy()])


@pytest.fixture(scope="module")
def resnets():
    t = cl.zoo.pretrained("resnet8", "torch").eval()
    k = km.build("resnet8")
    _copy_resnet(t, k)
    return t, k


def _torch_masks(m):
    return [(mod.weight.detach().numpy() != 0) for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]


def _keras_masks(m):
    out = []
    for l in m.layers:
        if hasattr(l, "kernel"):
            k = np.asarray(l.kernel.numpy())
            out.append((k.T if k.ndim == 2 else k.transpose(3, 2, 0, 1)) != 0)
    return out


@pytest.mark.parametrize("config", [cl.Magnitude(0.9, scope="global"), cl.Magnitude(0.6), cl.NM(2, 4)],
                         ids=["global", "layer", "2:4"])
def test_same_masks_resnet(resnets, config):
    t, k = resnets
    with pytest.warns(UserWarning) if isinstance(config, cl.NM) else _nullcontext():
        tp = cl.prune(t, config)
    with pytest.warns(UserWarning) if isinstance(config, cl.NM) else _nullcontext():
        kp = cl.prune(k, config)
    for a, b in zip(_torch_masks(tp), _keras_masks(kp), strict=True):
        assert np.array_equal(a, b)


def test_same_masks_mlp():
    t = cl.zoo.pretrained("lenet300_100", "torch")
    k = km.build("lenet300_100")
    _copy_mlp(t, k)
    cfg = cl.Magnitude(0.9, scope="global")
    for a, b in zip(_torch_masks(cl.prune(t, cfg)), _keras_masks(cl.prune(k, cfg)), strict=True):
        assert np.array_equal(a, b)


def test_structured_same_channels_same_function(resnets):
    t, k = resnets
    x = cl.datasets.load_mnist("test", layout="keras")[0][:32]
    ts = cl.prune(t, cl.Structured(0.5), example_input=torch.from_numpy(x[:1].transpose(0, 3, 1, 2)))
    ks = cl.prune(k, cl.Structured(0.5))
    assert sum(p.numel() for p in ts.parameters()) == sum(int(np.prod(w.shape)) for w in ks.trainable_weights)
    with torch.no_grad():
        expected = ts.eval()(torch.from_numpy(x.transpose(0, 3, 1, 2))).numpy()
    np.testing.assert_allclose(np.asarray(ks(x, training=False)), expected, rtol=1e-4, atol=1e-4)


def test_sensitivity_curves_agree():
    from compresslib.keras import pruning as kp
    from compresslib.torch import pruning as tp_

    t = cl.zoo.pretrained("lenet300_100", "torch")
    k = km.build("lenet300_100")
    _copy_mlp(t, k)
    x, y = cl.datasets.load_mnist("test")
    tc = tp_.sensitivity(t, (x[:400, None], y[:400]), sparsities=(0.5, 0.95))
    kc = kp.sensitivity(k, (x[:400, ..., None], y[:400]), sparsities=(0.5, 0.95))
    for (tn, a), (kn, b) in zip(tc.items(), kc.items(), strict=True):
        np.testing.assert_allclose(a, b, atol=0.0051)  # at most 2 of 400 digits differ (float order)
