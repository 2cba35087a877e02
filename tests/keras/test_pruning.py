"""Keras pruning: unstructured, N:M, gradual callback, structured (own graph walk), packed save/load."""
import warnings

import numpy as np
import pytest

import compresslib as cl
from compresslib.core.schedules import PolynomialDecay
from compresslib.keras import graph, models, pruning, train

import keras  # noqa: E402  (after torch, via conftest)


@pytest.fixture(scope="module")
def lenet300():
    return cl.zoo.pretrained("lenet300_100", "keras")


@pytest.fixture(scope="module")
def resnet():
    return cl.zoo.pretrained("resnet8", "keras")


@pytest.fixture(scope="module")
def xk():
    x, y = cl.datasets.load_mnist("test", layout="keras")
    return x, y


def _kernels(m):
    return {l.name: np.asarray(l.kernel.numpy()) for l in m.layers if hasattr(l, "kernel")}


def test_layer_magnitude_exact_and_input_untouched(lenet300, keras_device):
    before = [w.copy() for w in lenet300.get_weights()]
    p = cl.prune(lenet300, cl.Magnitude(0.8))
    for name, k in _kernels(p).items():
        assert int((k == 0).sum()) == round(0.8 * k.size), name
        assert not np.signbit(k[k == 0]).any()  # +0.0, so the packer sees zeros
    assert all(np.array_equal(a, b) for a, b in zip(before, lenet300.get_weights()))
    assert [type(l).__name__ for l in p.layers] == [type(l).__name__ for l in lenet300.layers]


def test_global_magnitude_exact_total(lenet300):
    ks = _kernels(cl.prune(lenet300, cl.Magnitude(0.9, scope="global")))
    total = sum(k.size for k in ks.values())
    assert sum(int((k == 0).sum()) for k in ks.values()) == round(0.9 * total)


def test_nm_on_conv_uses_torch_fan_in_order(keras_device):
    m = models.build("resnet8")
    with pytest.warns(UserWarning, match=r"skipped .*stem_conv \(fan-in 9\)"):
        p = cl.prune(m, cl.NM(2, 4))
    k = p.get_layer("layer1_conv1").kernel.numpy()           # (3, 3, in, out)
    om = k.transpose(3, 2, 0, 1).reshape(k.shape[-1], -1, 4)  # (out, in*kh*kw / 4, 4)
    assert ((om != 0).sum(-1) == 2).all()


def test_gradual_callback(lenet300, xk, tmp_path):
    x, y = xk
    m = pruning.finalize(lenet300)
    sched = PolynomialDecay(0.0, 0.9, begin_step=0, end_step=12, frequency=4)
    cb = pruning.GradualPruning(cl.Magnitude(0.9, scope="global", schedule=sched), m)
    train.fit(m, (x[:1024], y[:1024]), epochs=1, batch_size=64, callbacks=[cb])
    assert cb.step == 16 and cb.sparsity == pytest.approx(0.9)
    final = cb.finalize(m)
    ks = _kernels(final)
    total = sum(k.size for k in ks.values())
    assert sum(int((k == 0).sum()) for k in ks.values()) == round(0.9 * total)
    assert train.evaluate(final, (x, y)) > 0.85
    from compresslib.keras.measure import native_file_bytes
    assert native_file_bytes(final)[0] < 0.5 * native_file_bytes(m)[0]  # no optimizer state in the copy


def test_packed_file_shrinks_and_round_trip_is_exact(lenet300, xk, tmp_path):
    x, _ = xk
    p = cl.prune(lenet300, cl.Magnitude(0.9, scope="global"))
    size = cl.save(p, tmp_path / "p.clz")
    native = cl.measure(lenet300, example_input=x[:1], latency=False).file_bytes
    assert native / size > 7
    q = cl.load(tmp_path / "p.clz")
    assert all(np.array_equal(a, b) for a, b in zip(q.get_weights(), p.get_weights()))
    assert np.array_equal(np.asarray(q(x[:64])), np.asarray(p(x[:64])))


def test_structured_resnet_halves_channels_and_keeps_residuals(resnet, xk, keras_device, tmp_path):
    x, _ = xk
    before = [w.copy() for w in resnet.get_weights()]
    s = cl.prune(resnet, cl.Structured(0.5))
    shapes = {n: tuple(k.shape) for n, k in _kernels(s).items()}
    assert shapes["stem_conv"] == (3, 3, 1, 8) and shapes["layer1_conv2"] == (3, 3, 8, 8)
    assert shapes["layer2_sc_conv"] == (1, 1, 8, 16) and shapes["layer3_conv2"] == (3, 3, 32, 32)
    assert shapes["fc"] == (32, 10)
    r0 = cl.measure(resnet, example_input=x[:1], latency=False)
    r1 = cl.measure(s, example_input=x[:1], latency=False)
    assert r1.params < 0.3 * r0.params and r1.macs < 0.3 * r0.macs
    assert all(np.array_equal(a, b) for a, b in zip(before, resnet.get_weights()))
    cl.save(s, tmp_path / "s.clz")
    back = cl.load(tmp_path / "s.clz")
    assert np.array_equal(np.asarray(back(x[:8])), np.asarray(s(x[:8])))


def _silence(model, rng, keep_fraction=0.5):
    """Make half the channels of every prunable group exactly dead (zero kernel/bias, BN gamma/beta) and tiny-scored."""
    g = graph.analyse(model)
    dead = {}
    for root, producers in g.groups().items():
        if g.is_frozen(root):
            continue
        n = int(model.get_layer(producers[0]).kernel.shape[-1])
        d = rng.permutation(n)[: n - int(n * keep_fraction)]
        dead[root] = d
        for p in producers:
            ws = model.get_layer(p).get_weights()
            ws = [w.copy() for w in ws]
            for w in ws:
                w[..., d] = 0.0
            model.get_layer(p).set_weights(ws)
    for node in g.nodes.values():  # BN after a dead channel: output exactly 0
        if node.kind == "BatchNormalization" and node.in_desc[0] is not None:
            root = g.find(node.in_desc[0].gid)
            if root in dead:
                ws = [w.copy() for w in node.layer.get_weights()]
                ws[0][dead[root]] = 0.0
                ws[1][dead[root]] = 0.0
                node.layer.set_weights(ws)
    return dead


@pytest.mark.parametrize("name", ["lenet5", "resnet8", "lenet300_100"])
def test_structured_removes_exactly_the_dead_channels(name, xk):
    """Channels that contribute nothing are the ones removed, and the function is unchanged."""
    x, _ = xk
    m = models.build(name)
    _silence(m, np.random.default_rng(1))
    expected = np.asarray(m(x[:16], training=False))
    s = cl.prune(m, cl.Structured(0.5))
    got = np.asarray(s(x[:16], training=False))
    assert s.count_params() < m.count_params()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_sequential_structured():
    m = keras.Sequential([keras.Input((6, 6, 2)), keras.layers.Conv2D(8, 3, activation="relu"),
                          keras.layers.BatchNormalization(), keras.layers.Flatten(), keras.layers.Dense(5)])
    s = cl.prune(m, cl.Structured(0.75))
    assert isinstance(s, keras.Sequential)
    assert tuple(s.layers[0].kernel.shape) == (3, 3, 2, 2) and tuple(s.layers[3].kernel.shape) == (32, 5)


def test_unsupported_layer_freezes_its_group_with_one_warning():
    i = keras.Input((8,))
    a = keras.layers.Dense(6, name="a")(i)
    b = keras.layers.Dense(6, name="b")(i)
    c = keras.layers.Concatenate(name="cat")([a, b])
    h = keras.layers.Dense(4, name="h")(i)
    m = keras.Model(i, [keras.layers.Dense(2, name="out")(c), keras.layers.Dense(2, name="out2")(h)])
    with pytest.warns(UserWarning, match=r"unsupported layers: cat \(Concatenate\)"):
        s = cl.prune(m, cl.Structured(0.5))
    assert s.get_layer("a").units == 6 and s.get_layer("b").units == 6 and s.get_layer("h").units == 2


def test_errors(subnet):
    with pytest.raises(TypeError, match="SubNet is a subclassed keras.Model whose layers are connected by its own"):
        cl.prune(subnet, cl.Structured(0.5))
    with pytest.raises(ValueError, match="remove every one of the 6 channels of conv1"):
        cl.prune(models.build("lenet5"), cl.Structured(0.9))
    with pytest.raises(TypeError, match="config must be one of"):
        cl.prune(models.build("lenet5"), "magnitude")


# --------------------------------------------------------------------------- models compresslib did not write


def _mobile_block_model():
    """A MobileNet-like block (1×1 expand, hard-swish written with keras.ops, depthwise, 1×1 project)
    nested in a Sequential with a new head: the keras.applications transfer-learning pattern."""
    keras.utils.set_random_seed(0)
    i = keras.Input((8, 8, 3))
    h = keras.layers.Conv2D(8, 1, name="expand")(i)
    h = h * keras.ops.relu6(h + 3.0) / 6.0
    h = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(h)
    h = keras.layers.Conv2D(4, 1, name="project")(h)
    block = keras.Model(i, h, name="block")
    return keras.Sequential([keras.Input((8, 8, 3)), block, keras.layers.GlobalAveragePooling2D(name="pool"),
                             keras.layers.Dense(2, name="head")], name="transfer")


def test_structured_through_nested_models_depthwise_convs_and_bare_ops():
    m = _mobile_block_model()
    block = m.get_layer("block")
    for name, dead in (("expand", [1, 3, 4, 6]), ("project", [0, 2])):  # channels that contribute nothing
        ws = [w.copy() for w in block.get_layer(name).get_weights()]
        for w in ws:
            w[..., dead] = 0.0
        block.get_layer(name).set_weights(ws)
    x = np.random.default_rng(0).normal(size=(3, 8, 8, 3)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every layer is understood: no warning
        s = cl.prune(m, cl.Structured(0.5))
    assert s.get_layer("expand").filters == 4 and s.get_layer("project").filters == 2
    assert tuple(s.get_layer("dw").kernel.shape) == (3, 3, 4, 1) and tuple(s.get_layer("head").kernel.shape) == (2, 2)
    np.testing.assert_allclose(np.asarray(s(x)), np.asarray(m(x)), rtol=1e-5, atol=1e-5)
    assert m.get_layer("block").get_layer("expand").filters == 8  # the input is untouched


def test_structured_on_a_recurrent_model_warns_that_nothing_changes():
    i = keras.Input((5,), dtype="int32")
    h = keras.layers.LSTM(4, name="lstm")(keras.layers.Embedding(10, 3)(i))
    m = keras.Model(i, keras.layers.Dense(2, name="out")(h))
    with pytest.warns(UserWarning, match=r"Structured: the model comes back unchanged: every channel group "
                                         r"\(out\) reaches a model output"):
        s = cl.prune(m, cl.Structured(0.3))
    assert s is not m and all(np.array_equal(a, b) for a, b in zip(s.get_weights(), m.get_weights()))


def test_magnitude_prunes_attention_projections_named_by_path():
    keras.utils.set_random_seed(0)
    i = keras.Input((4, 8))
    h = keras.layers.MultiHeadAttention(2, 4, name="mha1")(i, i)
    h = keras.layers.MultiHeadAttention(2, 4, name="mha2")(h, h)
    m = keras.Model(i, h)
    layers = pruning.prunable_layers(m)
    assert sorted(layers) == sorted(f"{mha}/{p}" for mha in ("mha1", "mha2")
                                    for p in ("query", "key", "value", "attention_output"))
    p = cl.prune(m, cl.Magnitude(0.5))
    for key in layers:  # query (8, 2, 4): 64 weights, 32 zeros; attention_output (2, 4, 8) likewise
        mha, proj = key.split("/")
        attribute = {"attention_output": "_output_dense"}.get(proj, f"_{proj}_dense")
        kernel = np.asarray(getattr(p.get_layer(mha), attribute).kernel)
        assert kernel.size == 64 and int((kernel == 0).sum()) == 32
    n = cl.prune(m, cl.NM(2, 4))
    q = np.asarray(n.get_layer("mha1")._query_dense.kernel).reshape(8, 8)  # (in, out): 2 of every 4 inputs
    assert all(int((q[g:g + 4, o] == 0).sum()) == 2 for g in range(0, 8, 4) for o in range(8))


def test_unstructured_pruning_with_nothing_to_prune_is_refused():
    i = keras.Input((5,), dtype="int32")
    m = keras.Model(i, keras.layers.LSTM(3)(keras.layers.Embedding(10, 3)(i)), name="rnn_only")
    with pytest.raises(ValueError, match="Magnitude prunes the kernels of Dense, Conv1D/2D/3D, DepthwiseConv2D "
                                         "and EinsumDense layers; rnn_only has none"):
        cl.prune(m, cl.Magnitude(0.5))


def test_depthwise_kernels_use_torch_layout():
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((5, 5, 3)), keras.layers.DepthwiseConv2D(2, depth_multiplier=2, name="dw")])
    layer = m.get_layer("dw")
    om = pruning.kernel_output_major(layer)
    k = np.asarray(layer.kernel)
    assert om.shape == (6, 1, 2, 2) and np.array_equal(om[3, 0], k[:, :, 1, 1])  # channel 1, multiplier 1
    assert np.array_equal(pruning.kernel_layout(layer, om), k)
    p = cl.prune(m, cl.Magnitude(0.5))
    assert int((np.asarray(p.get_layer("dw").kernel) == 0).sum()) == 12


def test_structured_through_a_squeeze_excitation_reshape():
    keras.utils.set_random_seed(0)
    i = keras.Input((6, 6, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", name="conv")(i)
    se = keras.layers.Reshape((1, 1, 8), name="se_reshape")(keras.layers.GlobalAveragePooling2D()(h))
    se = keras.layers.Conv2D(8, 1, activation="sigmoid", name="se_expand")(se)
    h = keras.layers.Multiply(name="se_scale")([h, se])
    m = keras.Model(i, keras.layers.Dense(2, name="head")(keras.layers.GlobalAveragePooling2D()(h)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = cl.prune(m, cl.Structured(0.5))
    assert s.get_layer("conv").filters == 4 and s.get_layer("se_expand").filters == 4
    assert s.get_layer("se_reshape").target_shape == (1, 1, 4)
    assert s(np.zeros((2, 6, 6, 3), np.float32)).shape == (2, 2)
