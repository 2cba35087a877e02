"""``cl.transfer`` of decomposed models: Tucker-2, SVD and CP factors carried factor by factor.

A decomposed torch model (``FactoredConv2d``/``FactoredLinear``) goes to Keras (``<layer>_tucker0..2``,
``<layer>_svd0..1``, ``<layer>_cp0..3``) and back with the same logits; a twin decomposed to other
ranks, or not decomposed, is refused with the layer named.
"""
import warnings

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.keras import transfer as keras_io
from compresslib.torch import transfer as torch_io
from compresslib.torch.models import build

X = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)


def inner_3x3(name, layer):
    """The blocks' 3×3 convolutions (same names in both frameworks), not the stem or the shortcuts."""
    return name.startswith("layer") and name.endswith(("conv1", "conv2"))


def decomposed(model, config, layers=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return cl.decompose(model, config, layers=layers)


def torch_logits(model):
    with torch.no_grad():
        return model.eval()(torch.from_numpy(X.transpose(0, 3, 1, 2))).numpy()


@pytest.fixture(scope="module")
def tucker_svd():
    torch.manual_seed(0)
    m = build("resnet8_w8").eval()
    return decomposed(decomposed(m, cl.Tucker(ranks=(4, 6)), inner_3x3), cl.SVD(rank=4))


def test_tucker_and_svd_family_member_both_ways(tucker_svd):
    ref = torch_logits(tucker_svd)
    k = cl.transfer(tucker_svd, framework="keras")
    names = [layer.name for layer in k.layers]
    assert {"layer1.0.conv1_tucker0", "layer1.0.conv1_tucker1", "layer1.0.conv1_tucker2",
            "fc_svd0", "fc_svd1"} <= set(names)
    assert "layer1.0.conv1" not in names and "fc" not in names
    assert torch_io.factored(tucker_svd)["layer1.0.conv1"].rank == keras_io.factored(k)["layer1.0.conv1"].rank \
        == (4, 6)
    np.testing.assert_allclose(np.asarray(k(X)), ref, atol=1e-5)
    back = cl.transfer(k, framework="torch")
    assert torch_io.factored(back) == torch_io.factored(tucker_svd)
    np.testing.assert_allclose(torch_logits(back), ref, atol=1e-5)
    assert sum(p.numel() for p in back.parameters()) == sum(p.numel() for p in tucker_svd.parameters())


def test_reference_model_with_renamed_layers_and_cp():
    """LeNet-5's layers are renamed between frameworks ("3" ↔ "conv2", "7" ↔ "fc1", after a Flatten)."""
    torch.manual_seed(1)
    m = build("lenet5").eval()
    d = decomposed(decomposed(m, cl.Tucker(ranks=(3, 8)), ["3"]), cl.SVD(rank=8), ["7"])
    d = decomposed(d, cl.CP(rank=4), ["0"])
    k = cl.transfer(d, framework="keras")
    assert {n: (f.kind, f.rank) for n, f in keras_io.factored(k).items()} == {
        "conv1": ("cp", 4), "conv2": ("tucker", (3, 8)), "fc1": ("svd", 8)}
    np.testing.assert_allclose(np.asarray(k(X)), torch_logits(d), atol=1e-5)
    back = cl.transfer(k, framework="torch")
    np.testing.assert_allclose(torch_logits(back), torch_logits(d), atol=1e-5)


def test_like_decomposed_otherwise_is_refused_with_the_layer_named(tucker_svd):
    from compresslib.keras.models import build as keras_build

    other = decomposed(decomposed(keras_build("resnet8_w8"), cl.Tucker(ranks=(4, 5)), inner_3x3),
                       cl.SVD(rank=4))
    with pytest.raises(ValueError, match=r"layer 'layer1\.0\.conv1\.1'.*shape"):
        cl.transfer(tucker_svd, framework="keras", like=other)
    with pytest.raises(ValueError, match=r"layer 'layer1\.0\.conv1' is decomposed \(tucker.*not decomposed"):
        cl.transfer(tucker_svd, framework="keras", like=keras_build("resnet8_w8"))
