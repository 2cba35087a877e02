"""The residual families: same parameters, MACs and layer names in both frameworks; transfer both ways."""
import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.core import architectures as arch
from compresslib.keras import models as km
from compresslib.torch import models as tm

FAMILY = ("resnet8_w16", "resnet14_w16", "resnet20_w16", "resnet32_w16", "resnet20_w16_plain", "resnet32_w16_plain",
          "resnet8_w8", "resnet14_w8.24.32", "resnet14_w4.16.64", "resnet11_w8_bottleneck", "resnet20_w16_bottleneck",
          "resnet11_w8_bottleneck_plain", "resnet8_w32_56px", "invres_x0.25", "invres_x0.5", "invres_x1.0",
          "invres_x1.5")
REFERENCE = tm.MODEL_NAMES


def _size(name):
    return arch.parse(name).input_size if arch.is_family_name(name) else 28


def _weight_layer_names_torch(m):
    return [n for n, mod in m.named_modules() if any(p is not None for p in mod._parameters.values())]


@pytest.mark.parametrize("name", FAMILY)
def test_same_parameters_macs_and_layer_names(name):
    t, k = tm.build(name), km.build(name)
    s = _size(name)
    rt = cl.measure(t, example_input=torch.zeros(1, 1, s, s), latency=False)
    rk = cl.measure(k, latency=False)
    assert rt.params == rk.params == sum(p.numel() for p in t.parameters())
    assert rt.macs == rk.macs > 0
    # same names; Keras lists layers in topological order (a shortcut conv may come before its block's bn2)
    assert sorted(_weight_layer_names_torch(t)) == sorted(l.name for l in k.layers if l.weights)
    assert t.arch_name == k.name == name


def test_member_parameter_counts():
    """Exact counts (a change to a family shows here and in the shipped results that depend on it)."""
    counts = {n: sum(p.numel() for p in tm.build(n).parameters()) for n in
              ("resnet8_w16", "resnet20_w16", "resnet20_w16_plain", "resnet11_w8_bottleneck", "invres_x0.5")}
    assert counts == {"resnet8_w16": 77754, "resnet20_w16": 272186, "resnet20_w16_plain": 269434,
                      "resnet11_w8_bottleneck": 33090, "invres_x0.5": 51514}
    # the plain net differs only by the 1×1 projection shortcuts (conv + BN) of stages 2 and 3
    assert counts["resnet20_w16"] - counts["resnet20_w16_plain"] == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    # resnet8_w16 is the reference ResNet8 with family names
    assert counts["resnet8_w16"] == sum(p.numel() for p in tm.build("resnet8").parameters())


def test_plain_has_no_add_and_residual_has_one_per_block():
    for name, adds in (("resnet20_w16", 9), ("resnet20_w16_plain", 0), ("invres_x1.0", 5)):
        k = km.build(name)
        assert sum(type(l).__name__ == "Add" for l in k.layers) == adds


def _randomize(model, seed=0):
    """Non-trivial BatchNorm statistics and affine terms (fresh ones are 0/1 and would hide a swap)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.uniform_(-0.2, 0.2, generator=g)
    return model.eval()


def _digits(name, n=8):
    x = cl.datasets.load_mnist("test", layout="keras")[0][:n]
    f = _size(name) // 28
    return np.repeat(np.repeat(x, f, 1), f, 2) if f > 1 else x


def _torch_out(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()


@pytest.mark.parametrize("name", FAMILY + REFERENCE)
def test_transfer_both_ways_same_outputs(name):
    t = _randomize(tm.build(name))
    x = _digits(name)
    expected = _torch_out(t, x)
    k = cl.transfer(t, framework="keras")
    assert np.abs(np.asarray(k(x, training=False)) - expected).max() <= 1e-5
    back = cl.transfer(k, framework="torch")
    assert np.abs(_torch_out(back, x) - expected).max() <= 1e-5
    # every weight and statistic made the round trip exactly
    for (n1, a), (n2, b) in zip(t.state_dict().items(), back.state_dict().items()):
        assert n1 == n2 and torch.equal(a, b), n1


def test_transfer_keras_trained_model_to_torch():
    """The other direction from a Keras-made model (Keras initialisation, Keras BN statistics)."""
    k = km.build("invres_x0.5")
    x = _digits("invres_x0.5", 64)
    k(x, training=True)  # one training-mode call moves the moving statistics off 0/1
    for layer in k.layers:
        if type(layer).__name__ == "BatchNormalization":
            n = layer.moving_mean.shape[0]
            rng = np.random.default_rng(len(layer.name))
            layer.moving_mean.assign(rng.uniform(-0.3, 0.3, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2, n).astype("float32"))
    t = cl.transfer(k, framework="torch")
    assert not t.training
    assert np.abs(_torch_out(t, x) - np.asarray(k(x, training=False))).max() <= 1e-5


def test_transfer_leaves_the_input_untouched():
    t = _randomize(tm.build("resnet8_w8"))
    before = {n: v.clone() for n, v in t.state_dict().items()}
    t.train()
    cl.transfer(t, framework="keras")
    assert t.training  # mode restored
    assert all(torch.equal(before[n], v) for n, v in t.state_dict().items())
    k = km.build("resnet8_w8")
    weights = [w.copy() for w in k.get_weights()]
    like = tm.build("resnet8_w8")
    like_before = {n: v.clone() for n, v in like.state_dict().items()}
    out = cl.transfer(k, framework="torch", like=like)
    assert out is not like and all(torch.equal(like_before[n], v) for n, v in like.state_dict().items())
    assert all(np.array_equal(a, b) for a, b in zip(weights, k.get_weights()))


def test_transfer_refuses_mismatched_models_naming_the_layer():
    t = tm.build("resnet8_w16").eval()
    with pytest.raises(ValueError, match="layer 'layer2.0.shortcut.0'.*no weight layer named"):
        cl.transfer(tm.build("resnet20_w16"), framework="keras", like=km.build("resnet20_w16_plain"))
    with pytest.raises(ValueError, match="'layer1.1.conv1' that the torch model lacks"):
        cl.transfer(t, framework="keras", like=km.build("resnet14_w16"))
    with pytest.raises(ValueError, match=r"layer 'stem.conv'.*weight shape \(8, 1, 3, 3\) vs \(16, 1, 3, 3\)"):
        cl.transfer(tm.build("resnet8_w8"), framework="keras", like=km.build("resnet8_w16"))
    with pytest.raises(ValueError, match="layer 'stem.conv'.*bias has no counterpart"):
        cl.transfer(cl.fold_batchnorm(t), framework="keras")  # folded: a bias where the twin has a BN
    eps = tm.build("resnet8_w16")
    for m in eps.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.eps = 1e-3
    with pytest.raises(ValueError, match="layer 'stem.bn'.*eps"):
        cl.transfer(km.build("resnet8_w16"), framework="torch", like=eps)


def test_transfer_refuses_bad_arguments():
    t = tm.build("resnet8_w8")
    with pytest.raises(ValueError, match="framework: model is already a torch model"):
        cl.transfer(t, framework="torch")
    with pytest.raises(ValueError, match="framework must be one of"):
        cl.transfer(t, framework="jax")
    with pytest.raises(TypeError, match="model must be a torch.nn.Module or a Keras 3 model"):
        cl.transfer(object(), framework="keras")
    with pytest.raises(TypeError, match="like must be a keras model"):
        cl.transfer(t, framework="keras", like=tm.build("resnet8_w8"))
    with pytest.raises(ValueError, match="cannot tell which architecture"):
        cl.transfer(torch.nn.Sequential(torch.nn.Linear(3, 2)), framework="keras")
    with pytest.raises(ValueError, match="tolerance must be a positive number"):
        cl.transfer(t, framework="keras", tolerance=0)


def test_transfer_names_the_first_layer_whose_output_differs():
    """Same weights, different padding: only running both models can tell, and the message names the conv."""
    import keras
    from keras import layers

    i = keras.Input((28, 28, 1), name="input")
    x = layers.Conv2D(4, 3, strides=2, padding="same", use_bias=False, name="0")(i)  # pads bottom/right only
    o = layers.Dense(2, name="2")(layers.Flatten(name="1")(x))
    like = keras.Model(i, o)
    tmodel = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, stride=2, padding=1, bias=False), torch.nn.Flatten(),
                                 torch.nn.Linear(4 * 14 * 14, 2))
    with pytest.raises(ValueError, match="from layer '0' on"):
        cl.transfer(tmodel, framework="keras", like=like)
    out = cl.transfer(tmodel, framework="keras", like=like, check=False)  # asked not to check: filled as told
    assert np.array_equal(out.get_layer("0").kernel.numpy(), tmodel[0].weight.detach().numpy().transpose(2, 3, 1, 0))


def test_reference_model_found_without_its_name():
    """A torch reference model built by hand (no arch_name) is recognised by its state_dict."""
    t = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 300), torch.nn.ReLU(), torch.nn.Linear(300, 100),
                            torch.nn.ReLU(), torch.nn.Linear(100, 10)).eval()
    k = cl.transfer(t, framework="keras")
    assert k.name == "lenet300_100"


def test_transfer_from_a_torch_model_on_each_device(torch_device):
    t = _randomize(tm.build("invres_x0.25")).to(torch_device)
    x = _digits("invres_x0.25")
    with torch.no_grad():
        expected = t(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(torch_device)).cpu().numpy()
    k = cl.transfer(t, framework="keras")
    assert np.abs(np.asarray(k(x, training=False)) - expected).max() <= 1e-5
    assert next(t.parameters()).device.type == torch_device  # the input model stays where it was


def test_transfer_from_a_keras_model_on_each_device(keras_device):
    k = km.build("resnet11_w8_bottleneck")
    x = _digits("resnet11_w8_bottleneck")
    expected = np.asarray(k(x, training=False))
    t = cl.transfer(k, framework="torch")
    assert np.abs(_torch_out(t, x) - expected).max() <= 1e-5
