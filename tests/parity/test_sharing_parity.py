"""The same weights give the same codebooks and the same zeros in PyTorch and Keras."""
import numpy as np
import torch

import compresslib as cl
from compresslib.keras import sharing as ks
from compresslib.torch import sharing as ts


def test_same_weights_same_codebooks():
    t = cl.prune(cl.zoo.pretrained("lenet300_100", "torch"), cl.Magnitude(0.9, scope="global"))
    k = cl.zoo.pretrained("lenet300_100", "keras")
    for (name, lk) in zip(("1", "3", "5"), ("fc1", "fc2", "fc3")):
        k.get_layer(lk).kernel.assign(t.get_submodule(name).weight.detach().numpy().T)
        k.get_layer(lk).bias.assign(t.get_submodule(name).bias.detach().numpy())
    for init in ("linear", "density", "random"):
        cfg = cl.WeightSharing(bits=5, init=init, seed=4)
        tb, kb = ts.codebooks(ts.share_weights(t, cfg)), ks.codebooks(ks.share_weights(k, cfg))
        for name, lk in zip(("1", "3", "5"), ("fc1", "fc2", "fc3")):
            assert np.array_equal(tb[name], kb[lk]), (init, name)
    st, sk = ts.share_weights(t, cfg), ks.share_weights(k, cfg)
    np.testing.assert_array_equal(st[1].weight.detach().numpy().T, sk.get_layer("fc1").kernel.numpy())
