import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib import zoo

THRESHOLDS = {"lenet300_100": 0.95, "lenet5": 0.97, "resnet8": 0.975, "lenet5_caffe": 0.975}


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("name", sorted(THRESHOLDS))
def test_shipped_weights_reach_their_accuracy(name, framework):
    model = zoo.pretrained(name, framework=framework, train_if_missing=False)
    test = cl.datasets.load_mnist("test", layout=framework)
    trainer = cl._dispatch.backend(framework, "train")
    acc = trainer.evaluate(model, test)
    assert acc >= THRESHOLDS[name]
    record = zoo.manifest()[f"{framework}_{name}"]
    assert record["test_accuracy"] == pytest.approx(acc, abs=1e-9)  # the manifest tells the truth


# Fashion-MNIST networks (scripts/train_fashion_zoo.py): every one the manifest records must ship in both
# frameworks and reach its bar on all 10,000 test images (the targets: ResNet-20 >= 93 %, plain >= 92 %)
FASHION_THRESHOLDS = {"fashion_resnet20": 0.93, "fashion_resnet20_wide": 0.93, "fashion_plain20": 0.92}
FASHION_SHIPPED = sorted({r["name"] for r in zoo.manifest().values() if r.get("dataset") == "fashion_mnist"})


@pytest.mark.parametrize("framework", ["torch", "keras"])
@pytest.mark.parametrize("name", FASHION_SHIPPED)
def test_shipped_fashion_networks_reach_their_accuracy(name, framework):
    model = zoo.pretrained(name, framework=framework, train_if_missing=False)
    test = cl.datasets.load_fashion_mnist("test", layout=framework)
    acc = cl._dispatch.backend(framework, "train").evaluate(model, test)
    assert acc >= FASHION_THRESHOLDS[name]
    record = zoo.manifest()[f"{framework}_{name}"]
    assert record["test_accuracy"] == pytest.approx(acc, abs=1e-9)
    assert record["arch"] == zoo.RECIPES[name].arch and record["recipe"] == zoo.RECIPES[name].as_dict()


def test_fashion_networks_are_not_trained_on_first_use():
    with pytest.raises(ValueError, match="train_fashion_zoo"):
        zoo.train("fashion_resnet20", "torch")


def test_fresh_copy_each_call():
    a = zoo.pretrained("lenet5", "torch")
    with torch.no_grad():
        a[0].weight.zero_()
    b = zoo.pretrained("lenet5", "torch")
    assert b is not a and float(b[0].weight.detach().abs().sum()) > 0


def test_cache_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSLIB_CACHE", str(tmp_path))
    assert zoo.cache_dir() == tmp_path
    with pytest.raises(FileNotFoundError, match="mlp_wide"):
        zoo.pretrained("mlp_wide", "torch", train_if_missing=False)


def test_train_is_deterministic_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("COMPRESSLIB_CACHE", str(tmp_path))
    monkeypatch.setitem(zoo.RECIPES, "mlp_wide", zoo.Recipe(epochs=1, batch_size=256))
    first = zoo.pretrained("mlp_wide", "torch")
    assert (tmp_path / "torch_mlp_wide.npz").is_file()
    second, _ = zoo.train("mlp_wide", "torch")
    for p, q in zip(first.parameters(), second.parameters()):
        assert torch.equal(p, q)


def test_bad_names():
    with pytest.raises(ValueError, match="name must be one of"):
        zoo.pretrained("vgg16", "torch")
    with pytest.raises(ValueError, match="framework"):
        zoo.pretrained("lenet5", "jax")
