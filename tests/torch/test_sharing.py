"""torch.sharing: codebooks per layer, zeros kept, the paper's centroid gradient, .clz round trip."""
import copy

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib import io as clio
from compresslib.torch import models, sharing


def _pruned_lenet(device="cpu"):
    return cl.prune(cl.zoo.pretrained("lenet300_100", "torch"), cl.Magnitude(0.9, scope="global")).to(device)


def test_share_weights_codebooks_and_zeros(torch_device):
    model = _pruned_lenet(torch_device)
    before = copy.deepcopy(model.state_dict())
    shared = sharing.share_weights(model, cl.WeightSharing(bits=5, per_layer_bits={"5": 3}))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched
    books = {k: len(v) for k, v in sharing.codebooks(shared).items()}
    # linear init on pruned weights: the centroids that start in the gap around zero stay empty and are dropped
    assert 16 <= books["1"] <= 32 and 16 <= books["3"] <= 32 and 4 <= books["5"] <= 8
    dense = sharing.share_weights(model, cl.WeightSharing(bits=5, init="density"))
    assert [len(v) for v in sharing.codebooks(dense).values()] == [32, 32, 32]
    for name, bits in (("1", 5), ("3", 5), ("5", 3)):
        w, w0 = shared.get_submodule(name).weight.detach(), model.get_submodule(name).weight.detach()
        assert w.device.type == torch_device and torch.equal(w == 0, w0 == 0)
        assert torch.equal(shared.get_submodule(name).bias, model.get_submodule(name).bias)
        # each weight went to a near centroid: error under the spacing of 2**bits evenly spread centroids
        assert float((w - w0).abs().max()) < float(w0.max() - w0.min()) / 2 ** (bits - 1)


def test_conv_bits_and_errors():
    lenet5 = cl.zoo.pretrained("lenet5", "torch")
    s = sharing.share_weights(lenet5, cl.WeightSharing(bits=2, conv_bits=4, init="density"))
    assert [len(v) for v in sharing.codebooks(s).values()] == [16, 16, 4, 4, 4]
    with pytest.raises(ValueError, match=r"per_layer_bits: no Linear/Conv layers named \['fc9'\]"):
        sharing.share_weights(lenet5, cl.WeightSharing(per_layer_bits={"fc9": 3}))
    with pytest.raises(ValueError, match="model: has no Linear or Conv"):
        sharing.share_weights(torch.nn.Sequential(torch.nn.ReLU()), cl.WeightSharing())
    with pytest.raises(TypeError, match="config must be"):
        sharing.share_weights(lenet5, cl.Magnitude(0.5))
    with pytest.raises(ValueError, match=r"WeightSharing.bits must be an integer in \[1, 8\], got 0"):
        cl.WeightSharing(bits=0)
    with pytest.raises(ValueError, match=r"per_layer_bits\['fc1'\]"):
        cl.WeightSharing(per_layer_bits={"fc1": 12})


def test_same_seed_same_codebooks():
    m = _pruned_lenet()
    for init in ("linear", "density", "random"):
        a, b = (sharing.codebooks(sharing.share_weights(m, cl.WeightSharing(bits=4, init=init, seed=3))) for _ in "ab")
        assert all(np.array_equal(a[k], b[k]) for k in a)
    r1 = sharing.codebooks(sharing.share_weights(m, cl.WeightSharing(bits=4, init="random", seed=1)))
    r2 = sharing.codebooks(sharing.share_weights(m, cl.WeightSharing(bits=4, init="random", seed=2)))
    assert not np.array_equal(r1["1"], r2["1"])


def test_centroid_gradient_is_the_sum_of_the_cluster(torch_device):
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(20, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3)).to(torch_device)
    with torch.no_grad():
        m[0].weight[:, :5] = 0
    s = sharing.share_weights(m, cl.WeightSharing(bits=2))
    tuning = sharing.CentroidTuning(s)
    x = torch.randn(16, 20, device=torch_device)
    # reference: gradient of the plain weight, summed per cluster
    ref = copy.deepcopy(s)
    ref[2](ref[1](ref[0](x))).sum().backward()
    tuning.model[2](tuning.model[1](tuning.model[0](x))).sum().backward()
    for i in (0, 2):
        w = s[i].weight.detach().cpu().numpy()
        codebook, labels = cl.core.sharing.clusters(w)
        expect = cl.core.sharing.cluster_gradient(ref[i].weight.grad.cpu().numpy(), labels, codebook.size)
        got = tuning.model[i].weight.grad.cpu().numpy()
        np.testing.assert_allclose(got[labels >= 0], expect[labels[labels >= 0]], rtol=1e-5, atol=1e-6)
        assert (got[labels < 0] == 0).all()
    # one SGD step moves each centroid by -lr * (sum of its gradients)
    opt = torch.optim.SGD(tuning.model.parameters(), lr=0.01)
    opt.step()
    codebook, labels = cl.core.sharing.clusters(s[0].weight.detach().cpu().numpy())
    moved = tuning.model[0].weight.detach().cpu().numpy()
    expect = codebook - 0.01 * cl.core.sharing.cluster_gradient(ref[0].weight.grad.cpu().numpy(), labels, codebook.size)
    np.testing.assert_allclose(moved[labels >= 0], expect[labels[labels >= 0]], rtol=1e-5, atol=1e-7)


def test_finetune_keeps_sharing_and_zeros_and_recovers_accuracy():
    from compresslib.torch.train import evaluate, fit

    train = cl.datasets.load_mnist("train", layout="torch")
    test = cl.datasets.load_mnist("test", layout="torch")
    pruned = _pruned_lenet()
    shared = sharing.share_weights(pruned, cl.WeightSharing(bits=2))
    tuning = sharing.CentroidTuning(shared)
    fit(tuning.model, (train[0][:4000], train[1][:4000]), epochs=2, lr=1e-3, on_step=tuning)
    for name, w in sharing._layers(tuning.model, warn=False).items():  # Adam kept every cluster equal
        codebook, labels = cl.core.sharing.clusters(shared.get_submodule(name).weight.detach().numpy())
        vals = w.detach().numpy()
        for j in range(codebook.size):
            assert np.unique(vals[labels == j]).size == 1
        assert (vals[labels < 0] == 0).all()
    tuned = tuning.finalize()
    assert not tuned.training and all(not p._backward_hooks for p in tuned.parameters())
    assert [len(v) for v in sharing.codebooks(tuned).values()] == [len(v) for v in sharing.codebooks(shared).values()]
    assert evaluate(tuned, test) > evaluate(shared, test) + 0.005


def test_clz_stores_shared_weights_as_codebooks(tmp_path):
    pruned = _pruned_lenet()
    shared = sharing.share_weights(pruned, cl.WeightSharing(bits=5))
    path = tmp_path / "s.clz"
    size = cl.save(shared, path)
    tensors = clio.read_manifest(path)["tensors"]
    assert {tensors[f"{i}.weight"]["encoding"] for i in (1, 3, 5)} == {"codebook_ans"}
    assert size < cl.save(pruned, tmp_path / "p.clz") / 3
    back = cl.load(path)
    assert all(torch.equal(a, b) for a, b in zip(shared.state_dict().values(), back.state_dict().values()))
    a1, a2 = cl.save(shared, tmp_path / "a.clz"), cl.save(shared, tmp_path / "b.clz")
    assert a1 == a2 and (tmp_path / "a.clz").read_bytes() == (tmp_path / "b.clz").read_bytes()
