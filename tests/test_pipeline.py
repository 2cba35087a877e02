"""compresslib.pipeline: recipes in every form, clear errors, stages measured from the files read back."""
import json

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib import pipeline
from compresslib.io import read_manifest


def test_recipe_forms_agree(tmp_path):
    as_list = pipeline.load_recipe([cl.Magnitude(0.9, scope="global"), cl.WeightSharing(bits=4)])
    steps = [{"type": "Magnitude", "sparsity": 0.9, "scope": "global"}, {"type": "WeightSharing", "bits": 4}]
    as_dicts = pipeline.load_recipe(steps)
    (tmp_path / "r.json").write_text(json.dumps({"steps": steps}))
    (tmp_path / "r.yaml").write_text("steps:\n  - {type: Magnitude, sparsity: 0.9, scope: global}\n"
                                     "  - {type: WeightSharing, bits: 4}\n")
    for r in (as_dicts, pipeline.load_recipe(str(tmp_path / "r.json")), pipeline.load_recipe(tmp_path / "r.yaml")):
        assert [s.config for s in r.steps] == [s.config for s in as_list.steps]
        assert r.entropy_coding is True  # a WeightSharing step turns the coded stage on
    assert pipeline.load_recipe(["Magnitude"]).steps[0].config == cl.Magnitude()
    assert pipeline.load_recipe(["Magnitude"]).entropy_coding is False


def test_preset_and_finetune_settings():
    r = pipeline.load_recipe("deep_compression")
    assert isinstance(r.steps[0].config, cl.Magnitude) and r.steps[1].config.bits == 5
    assert r.steps[1].config.conv_bits == 8 and r.entropy_coding
    ft = r.finetune_for(r.steps[1])
    assert ft["epochs"] > 0 and ft["lr"] < r.finetune_for(r.steps[0])["lr"] and ft["distill"] is True
    # the preset is copied: changing a loaded recipe does not change the next one
    r.steps[0].finetune["epochs"] = 99
    assert pipeline.load_recipe("deep_compression").steps[0].finetune["epochs"] != 99


def test_gradual_schedule_spans_a_third_of_the_finetuning():
    cfg = pipeline.gradual_config(cl.Magnitude(0.9), {"epochs": 4, "batch_size": 100}, 1000)
    assert cfg.schedule.end_step == 13 and cfg.schedule(0) == 0.0 and cfg.schedule(13) == pytest.approx(0.9)


def test_schedule_from_a_dict():
    r = pipeline.load_recipe([{"type": "Magnitude", "sparsity": 0.9,
                               "schedule": {"type": "PolynomialDecay", "initial": 0.0, "final": 0.9, "end_step": 50}}])
    assert r.steps[0].config.schedule.end_step == 50


@pytest.mark.parametrize("recipe,message", [
    ([], "recipe steps must be a non-empty list"),
    ({"steps": ["Prune"]}, r"recipe steps\[0\]: unknown step type 'Prune'; known: \["),
    ([{"type": "WeightSharing", "bits": 9}], r"recipe steps\[0\] \(WeightSharing\): WeightSharing.bits must be an "
                                             r"integer in \[1, 8\], got 9"),
    ([{"type": "WeightSharing", "bitz": 4}], r"recipe steps\[0\] \(WeightSharing\): unknown field 'bitz'"),
    ([{"type": "WeightSharing", "init": "kmeans++"}], r"WeightSharing.init must be one of"),
    ([{"type": "Magnitude", "finetune": {"epoch": 3}}], r"unknown finetune field\(s\) \['epoch'\]"),
    ([{"type": "Magnitude", "finetune": {"lr": -1}}], r"finetune.lr must be a number > 0"),
    ([{"type": "Magnitude", "finetune": {"lr_schedule": "cosine"}}], r"finetune.lr_schedule must be 'constant' or 'step'"),
    ([{"type": "Magnitude", "finetune": {"gradual": "yes"}}], r"finetune.gradual must be true or false"),
    ([{"type": "Magnitude", "schedule": {"type": "Cosine"}}], "schedule type must be one of"),
    ({"steps": ["Magnitude"], "finetuning": {}}, r"recipe: unknown key\(s\) \['finetuning'\]"),
    ({"steps": ["Magnitude"], "entropy_coding": "yes"}, "entropy_coding must be true or false"),
    ("no_such_preset", "no preset or file named 'no_such_preset'; presets are \\['deep_compression'\\]"),
])
def test_bad_recipes_name_the_step_and_field(recipe, message):
    with pytest.raises(ValueError, match=message):
        pipeline.load_recipe(recipe)


def test_bad_files(tmp_path):
    (tmp_path / "bad.json").write_text("{steps: ")
    with pytest.raises(ValueError, match="not valid JSON"):
        pipeline.load_recipe(str(tmp_path / "bad.json"))
    (tmp_path / "bad.yaml").write_text("steps: [\n")
    with pytest.raises(ValueError, match="not valid YAML"):
        pipeline.load_recipe(str(tmp_path / "bad.yaml"))
    with pytest.raises(TypeError, match="recipe must be"):
        pipeline.load_recipe(42)
    with pytest.raises(TypeError, match=r"recipe steps\[0\] must be"):
        pipeline.load_recipe([3.5])


def _sparsity(model):
    w = [p.detach() for n, p in model.named_parameters() if n.endswith("weight")]
    return sum(int((p == 0).sum()) for p in w) / sum(p.numel() for p in w)


def test_compress_torch_stages(tmp_path):
    model = cl.zoo.pretrained("lenet300_100", "torch")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train = cl.datasets.load_mnist("train", layout="torch")
    test = cl.datasets.load_mnist("test", layout="torch")
    recipe = {"steps": [{"type": "Magnitude", "sparsity": 0.9, "scope": "global",
                         "finetune": {"epochs": 1, "gradual": True}},
                        {"type": "WeightSharing", "bits": 4, "finetune": {"epochs": 1, "lr": 3e-4}}],
              "finetune": {"batch_size": 128}}
    out, table = pipeline.compress(model, recipe, train_data=(train[0][:3000], train[1][:3000]), data=test,
                                   output=tmp_path / "out.clz", measure_kwargs={"latency": False})
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched
    rows = table.rows
    assert [r["name"] for r in rows] == ["input", "+ Magnitude", "+ WeightSharing", "+ entropy coding"]
    sizes = [r["packed_bytes"] for r in rows[1:]]
    assert sizes[0] > sizes[1] > sizes[2] == (tmp_path / "out.clz").stat().st_size
    assert rows[-1]["size_ratio"] == pytest.approx(rows[0]["file_bytes"] / sizes[2])
    assert rows[-1]["size_ratio"] > 30 and rows[-1]["accuracy"] > 0.9
    assert _sparsity(out) >= 0.9
    from compresslib.torch.sharing import codebooks

    assert all(len(v) <= 16 for v in codebooks(out).values())
    back = cl.load(tmp_path / "out.clz")
    x = torch.from_numpy(test[0][:100])
    with torch.no_grad():
        assert torch.equal(back(x), out(x))
    assert {read_manifest(tmp_path / "out.clz")["tensors"]["1.weight"]["encoding"]} <= {"codebook_ans"}


def test_same_seed_same_bytes(tmp_path):
    model = cl.zoo.pretrained("lenet300_100", "torch")
    recipe = [cl.Magnitude(0.9, scope="global"), cl.WeightSharing(bits=5, init="random", seed=3)]
    x = cl.datasets.load_mnist("test", layout="torch")[0][:2]
    for name in ("a.clz", "b.clz"):
        pipeline.compress(model, recipe, output=tmp_path / name, packed=False,
                          measure_kwargs={"latency": False, "example_input": x})
    assert (tmp_path / "a.clz").read_bytes() == (tmp_path / "b.clz").read_bytes()


def test_compress_keras_stages():
    model = cl.zoo.pretrained("lenet300_100", "keras")
    before = [w.copy() for w in model.get_weights()]
    train = cl.datasets.load_mnist("train", layout="keras")
    test = cl.datasets.load_mnist("test", layout="keras")
    recipe = {"steps": [{"type": "Magnitude", "sparsity": 0.9, "scope": "global"},
                        {"type": "WeightSharing", "bits": 4}], "finetune": {"epochs": 1, "batch_size": 128}}
    out, table = pipeline.compress(model, recipe, train_data=(train[0][:3000], train[1][:3000]), data=test,
                                   measure_kwargs={"latency": False})
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert [r["name"] for r in table.rows][-1] == "+ entropy coding"
    assert table.rows[-1]["size_ratio"] > 30 and table.rows[-1]["accuracy"] > 0.9
    kernels = [out.get_layer(n).kernel.numpy() for n in ("fc1", "fc2", "fc3")]
    assert sum(int((k == 0).sum()) for k in kernels) / sum(k.size for k in kernels) >= 0.9
    assert all(np.unique(k[k != 0]).size <= 16 for k in kernels)


def test_legacy_finetune_callable_keeps_zeros_and_centroids():
    from compresslib.torch.train import fit

    model = cl.zoo.pretrained("lenet300_100", "torch")
    train = cl.datasets.load_mnist("train", layout="torch")
    out, table = pipeline.compress(model, [cl.Magnitude(0.8, scope="global"), cl.WeightSharing(bits=3)],
                                   finetune=lambda m: fit(m, (train[0][:1000], train[1][:1000]), epochs=1),
                                   packed=False, data=cl.datasets.load_mnist("test", layout="torch"),
                                   measure_kwargs={"latency": False})
    # packed=False: the steps are measured in memory; the coded stage (on with a WeightSharing step) from its file
    assert [r["name"] for r in table.rows] == ["input", "+ Magnitude", "+ WeightSharing", "+ entropy coding"]
    assert table.rows[2]["packed_bytes"] is None and table.rows[3]["packed_bytes"] > 0
    assert _sparsity(out) >= 0.8
    assert all(torch.unique(p[p != 0]).numel() <= 8 for n, p in out.named_parameters() if n.endswith("weight"))


def test_errors_for_models():
    with pytest.raises(ValueError, match="model: has no Linear or Conv"):
        pipeline.compress(torch.nn.Sequential(torch.nn.ReLU()), [cl.WeightSharing()], packed=False,
                          measure_kwargs={"latency": False}, data=None)
    with pytest.raises(TypeError, match="model must be"):
        pipeline.compress(object(), "deep_compression")


def test_finetuning_comes_from_the_registered_tuners(monkeypatch):
    """The pipeline asks the registry: the backends' tuners for pruning and sharing, and a tuner registered
    for any other config is used the same way (no edit of pipeline.py)."""
    from compresslib import registry

    assert registry.tuner("torch", cl.Magnitude(0.5)).__name__ == "keep_masks"
    assert registry.tuner("torch", cl.NM()).__name__ == "keep_masks"
    assert registry.tuner("torch", cl.WeightSharing(3)).__name__ == "keep_centroids"
    assert registry.tuner("torch", cl.SVD(rank=2)) is None and registry.tuner("torch", cl.Int8Dynamic()) is None

    calls = []

    def double_then_restore(model, config):
        calls.append(type(config).__name__)
        return registry.Tuning(model, [lambda m, step: calls.append(step)], lambda m: "finished")

    monkeypatch.setitem(registry._TUNERS, ("torch", cl.SVD), double_then_restore)
    m = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x, y = np.random.default_rng(0).random((8, 4), dtype=np.float32), np.arange(8) % 3
    settings = {**pipeline.FINETUNE_FIELDS, "epochs": 1, "batch_size": 4}
    assert pipeline.finetune_step(m, cl.SVD(rank=2), settings, (x, y)) == "finished"
    assert calls == ["SVD", 1, 2]  # the tuner, then its hook after each of the 2 optimiser steps (counted from 1)
    # quantized steps without a tuner are not fine-tuned
    assert pipeline.finetune_step(m, cl.Int8Dynamic(), settings, (x, y)) is m


def test_register_tuner_refuses_a_second_tuner():
    from compresslib import registry

    registry.load_backend("torch")
    with pytest.raises(ValueError, match="Magnitude already has a torch tuner: compresslib.torch.pruning.keep_masks"):
        registry.register_tuner("torch", cl.Magnitude)(lambda model, config: None)


def test_compress_torch_from_a_dataloader():
    """A stream as train_data: gradual pruning's schedule counts the loader's batches (issue 26)."""
    model = cl.zoo.pretrained("lenet300_100", "torch")
    x, y = cl.datasets.load_mnist("train", layout="torch")
    ds = torch.utils.data.TensorDataset(torch.from_numpy(x[:1024]), torch.from_numpy(y[:1024]).long())
    loader = torch.utils.data.DataLoader(ds, batch_size=128, shuffle=True)
    recipe = {"steps": [{"type": "Magnitude", "sparsity": 0.8, "finetune": {"epochs": 1, "gradual": True}}]}
    out, table = pipeline.compress(model, recipe, train_data=loader, packed=False,
                                   measure_kwargs={"latency": False})
    assert [r["name"] for r in table.rows] == ["input", "+ Magnitude"]
    assert round(_sparsity(out), 2) == 0.8
    with pytest.raises(ValueError, match="train_data: gradual pruning .* has no length"):
        pipeline.compress(model, recipe, train_data=(b for b in loader), packed=False,
                          measure_kwargs={"latency": False})
