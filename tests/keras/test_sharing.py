"""keras.sharing: codebooks per layer, zeros kept, the paper's centroid gradient through CentroidLayer."""
import numpy as np
import pytest
import tensorflow as tf

import compresslib as cl
from compresslib import io as clio
from compresslib.keras import sharing


def _pruned_lenet():
    return cl.prune(cl.zoo.pretrained("lenet300_100", "keras"), cl.Magnitude(0.9, scope="global"))


def test_share_weights_codebooks_and_zeros(keras_device):
    model = _pruned_lenet()
    before = [w.copy() for w in model.get_weights()]
    shared = sharing.share_weights(model, cl.WeightSharing(bits=5, per_layer_bits={"fc3": 3}))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    books = {k: len(v) for k, v in sharing.codebooks(shared).items()}
    assert 16 <= books["fc1"] <= 32 and 16 <= books["fc2"] <= 32 and 4 <= books["fc3"] <= 8
    for name in ("fc1", "fc2", "fc3"):
        k, k0 = (np.asarray(m.get_layer(name).kernel.numpy()) for m in (shared, model))
        assert np.array_equal(k == 0, k0 == 0)
        np.testing.assert_array_equal(shared.get_layer(name).bias.numpy(), model.get_layer(name).bias.numpy())


def test_errors():
    import keras

    with pytest.raises(ValueError, match=r"per_layer_bits: no Dense/Conv layers named \['fc9'\]"):
        sharing.share_weights(_pruned_lenet(), cl.WeightSharing(per_layer_bits={"fc9": 3}))
    empty = keras.Sequential([keras.Input((4,)), keras.layers.ReLU()])
    with pytest.raises(ValueError, match="model: has no Dense or Conv"):
        sharing.share_weights(empty, cl.WeightSharing())


def test_centroid_gradient_is_the_sum_of_the_cluster():
    import keras

    keras.utils.set_random_seed(0)
    i = keras.Input((20,))
    m = keras.Model(i, keras.layers.Dense(3, name="out")(keras.layers.Dense(8, activation="relu", name="h")(i)))
    k = m.get_layer("h").kernel.numpy(); k[:5] = 0; m.get_layer("h").kernel.assign(k)
    s = sharing.share_weights(m, cl.WeightSharing(bits=2))
    tuning = sharing.CentroidTuning(s)
    x = np.random.default_rng(0).normal(size=(16, 20)).astype(np.float32)
    np.testing.assert_allclose(tuning.model(x).numpy(), s(x).numpy(), rtol=1e-5, atol=1e-6)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(s(x))
    ref = tape.gradient(loss, [s.get_layer(n).kernel for n in ("h", "out")])
    layers = [tuning.model.get_layer(n) for n in ("h", "out")]
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tuning.model(x))
    got = tape.gradient(loss, [l.codebook for l in layers])
    for g_ref, g_cb, name in zip(ref, got, ("h", "out")):
        codebook, labels = cl.core.sharing.clusters(s.get_layer(name).kernel.numpy())
        np.testing.assert_allclose(g_cb.numpy(), cl.core.sharing.cluster_gradient(g_ref.numpy(), labels, codebook.size),
                                   rtol=1e-5, atol=1e-6)


def test_finetune_keeps_sharing_and_zeros(tmp_path):
    from compresslib.keras.train import evaluate, fit

    train = cl.datasets.load_mnist("train", layout="keras")
    test = cl.datasets.load_mnist("test", layout="keras")
    shared = sharing.share_weights(_pruned_lenet(), cl.WeightSharing(bits=2))
    tuning = sharing.CentroidTuning(shared)
    assert sorted(l.name for l in tuning.model.layers if isinstance(l, sharing.CentroidLayer)) == ["fc1", "fc2", "fc3"]
    fit(tuning.model, (train[0][:4000], train[1][:4000]), epochs=2, lr=1e-3)
    tuned = tuning.finalize()
    assert [type(l).__name__ for l in tuned.layers] == [type(l).__name__ for l in shared.layers]
    assert [len(v) for v in sharing.codebooks(tuned).values()] == [len(v) for v in sharing.codebooks(shared).values()]
    for name in ("fc1", "fc2", "fc3"):
        assert np.array_equal(tuned.get_layer(name).kernel.numpy() == 0, shared.get_layer(name).kernel.numpy() == 0)
    assert evaluate(tuned, test) > evaluate(shared, test) + 0.005
    path = tmp_path / "t.clz"
    cl.save(tuned, path)
    encodings = {k: v["encoding"] for k, v in clio.read_manifest(path)["tensors"].items()}
    assert encodings["w000"] == "codebook_ans" and encodings["w004"] in ("codebook", "codebook_ans")
    np.testing.assert_array_equal(cl.load(path).predict_on_batch(test[0][:50]), tuned.predict_on_batch(test[0][:50]))
