"""compresslib.compress: several steps in order, each stage measured."""
import numpy as np
import pytest
import torch

import compresslib as cl


def _finetune_torch(train):
    from compresslib.torch.train import fit

    return lambda m: fit(m, train, epochs=1, lr=3e-4)


def test_prune_then_finetune_keeps_sparsity_torch():
    model = cl.zoo.pretrained("lenet300_100", "torch")
    train = cl.datasets.load_mnist("train", layout="torch")
    test = cl.datasets.load_mnist("test", layout="torch")
    out, table = cl.compress(model, [cl.Magnitude(0.8, scope="global")], finetune=_finetune_torch(train),
                             data=test, measure_kwargs={"runs": 5, "warmup": 1})
    assert [r["name"] for r in table.rows] == ["input", "+ Magnitude"]
    weights = [p for p in out.parameters() if p.ndim == 2]
    zeros = sum(int((p == 0).sum()) for p in weights) / sum(p.numel() for p in weights)
    assert zeros >= 0.8
    assert table.rows[1]["accuracy"] >= table.rows[0]["accuracy"] - 0.02
    assert all(float(p.detach().abs().sum()) > 0 for p in model.parameters())  # input untouched
    assert sum(int((p == 0).sum()) for p in model.parameters()) == 0


def test_prune_then_finetune_keeps_sparsity_keras():
    from compresslib.keras.train import fit

    model = cl.zoo.pretrained("lenet300_100", "keras")
    train = cl.datasets.load_mnist("train", layout="keras")
    out, table = cl.compress(model, [cl.Magnitude(0.8, scope="global")],
                             finetune=lambda m: fit(m, train, epochs=1, lr=3e-4),
                             data=cl.datasets.load_mnist("test", layout="keras"), measure_kwargs={"latency": False})
    kernels = [w.numpy() for w in out.weights if len(w.shape) == 2]
    assert sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels) >= 0.8
    assert table.rows[1]["accuracy"] >= table.rows[0]["accuracy"] - 0.02


def test_bad_steps():
    model = cl.zoo.pretrained("lenet5", "torch")
    with pytest.raises(ValueError, match="steps"):
        cl.compress(model, [])
    with pytest.raises(ValueError, match=r"steps\[0\]: unknown step type 'prune'"):
        cl.compress(model, ["prune"], data=cl.datasets.load_mnist("test", layout="torch"),
                    measure_kwargs={"latency": False})
