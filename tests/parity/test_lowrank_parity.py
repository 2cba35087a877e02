"""Same weights in both frameworks → the same ranks, the same factors and the same function."""
import warnings

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.keras import lowrank as kl
from compresslib.keras.models import build as kbuild
from compresslib.torch import lowrank as tl_
from compresslib.torch.models import build as tbuild

from .test_models_parity import _copy_resnet_weights, _keras_name


@pytest.fixture(scope="module")
def twins():
    t = cl.zoo.pretrained("resnet8", framework="torch").eval()
    k = kbuild("resnet8")
    _copy_resnet_weights(t, k)
    return t, k


def _nchw(x):
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@pytest.mark.parametrize("config", [cl.Tucker(energy=0.7), cl.Tucker(ranks=(8, 8)), cl.CP(rank=6)],
                         ids=["tucker-energy", "tucker-ranks", "cp"])
def test_same_plans_and_outputs(twins, config):
    t, k = twins
    tp, kp = tl_.plan(t, config), kl.plan(k, config)
    assert {_keras_name(n): (p.rank, p.params_after, p.accepted) for n, p in tp.items()} == \
        {n: (p.rank, p.params_after, p.accepted) for n, p in kp.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")                  # refused layers are named; tested elsewhere
        td, kd = cl.decompose(t, config).eval(), cl.decompose(k, config)
    decomposed = sum(p.accepted for p in tp.values())

    def extra_layers(p):  # factor layers beyond the one replaced; a full-rank Tucker mode has no 1×1 layer
        if p.kind == "cp":
            return 3
        (c_out, c_in, _, _), (r1, r2) = p.shape, p.rank
        return (r1 != c_in) + (r2 != c_out)
    assert decomposed >= 5
    assert len(kd.layers) - len(k.layers) == sum(extra_layers(p) for p in kp.values() if p.accepted)
    x = cl.datasets.load_mnist("test", layout="keras")[0][:16]
    with torch.no_grad():
        expected = td(_nchw(x)).numpy()
    np.testing.assert_allclose(np.asarray(kd(x, training=False)), expected, atol=1e-4, rtol=1e-4)
    assert (expected.argmax(1) == np.asarray(kd(x, training=False)).argmax(1)).all()


def test_svd_same_factors():
    torch.manual_seed(0)
    t = tbuild("mlp_wide").eval()
    k = kbuild("mlp_wide")
    for i, name in zip((1, 3, 5), ("fc1", "fc2", "fc3")):
        lin = t[i]
        k.get_layer(name).set_weights([lin.weight.detach().numpy().T, lin.bias.detach().numpy()])
    config = cl.SVD(energy=0.5)
    assert {n: p.rank for n, p in tl_.plan(t, config).items()} == \
        {n: p.rank for n, p in zip(("1", "3", "5"), kl.plan(k, config).values())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        td, kd = cl.decompose(t, config), cl.decompose(k, config)
    np.testing.assert_array_equal(td[1][0].weight.detach().numpy().T, np.asarray(kd.get_layer("fc1_svd0").kernel))
    x = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(np.asarray(kd(x)), td(_nchw(x)).numpy(), atol=1e-4, rtol=1e-4)


def test_fold_same_function(twins):
    t, k = twins
    tf_, kf = cl.fold_batchnorm(t), cl.fold_batchnorm(k)
    x = cl.datasets.load_mnist("test", layout="keras")[0][:16]
    with torch.no_grad():
        np.testing.assert_allclose(np.asarray(kf(x)), tf_(_nchw(x)).numpy(), atol=1e-4, rtol=1e-4)
