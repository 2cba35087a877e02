import json
import re

import numpy as np

import torch

import compresslib as cl
from compresslib.cli import main


def test_measure_json(capsys):
    assert main(["measure", "lenet5", "--framework", "torch", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["params"] == 61706 and report["accuracy"] >= 0.97


def test_inspect(tmp_path, capsys):
    path = tmp_path / "m.clz"
    cl.save(torch.nn.Sequential(torch.nn.Linear(3, 2)), path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "torch model, 2 tensors" in out and "0.weight" in out and "(2, 3)" in out


def test_info(capsys):
    assert main(["info"]) == 0
    assert "weights cache" in capsys.readouterr().out


def test_compress_help(capsys):
    import pytest

    with pytest.raises(SystemExit) as exc:
        main(["compress", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--recipe" in out and "deep_compression" in out and ".keras" in out


def test_compress_bad_recipe_and_model(tmp_path, capsys):
    assert main(["compress", "lenet300_100", "--recipe", "nope", "-o", str(tmp_path / "x.clz")]) == 2
    assert "recipe: no preset or file named 'nope'" in capsys.readouterr().err
    (tmp_path / "r.yaml").write_text("steps: [{type: WeightSharing, bits: 12}]\n")
    assert main(["compress", "lenet300_100", "--recipe", str(tmp_path / "r.yaml"), "-o", str(tmp_path / "x.clz")]) == 2
    assert "recipe steps[0] (WeightSharing): WeightSharing.bits must be an integer in [1, 8], got 12" in \
        capsys.readouterr().err
    assert main(["compress", "vgg16", "--recipe", "deep_compression", "-o", str(tmp_path / "x.clz")]) == 2
    assert "MODEL must be a zoo model" in capsys.readouterr().err
    assert not (tmp_path / "x.clz").exists()


def test_compress_zoo_model_then_inspect(tmp_path, capsys):
    (tmp_path / "r.json").write_text(json.dumps({"steps": [
        {"type": "Magnitude", "sparsity": 0.9, "scope": "global"}, {"type": "WeightSharing", "bits": 4}]}))
    out = tmp_path / "l.clz"
    assert main(["compress", "lenet300_100", "--recipe", str(tmp_path / "r.json"), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "+ entropy coding" in printed and f"wrote {out}" in printed
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    line = next(l for l in text.splitlines() if l.strip().startswith("1.weight"))
    assert "codebook_ans" in line and "ANS-coded" in line and "(4-bit indices)" in line.replace("of 16 ", "")
    bits = float(re.search(r"\s(\d+\.\d{3})\s", line).group(1))
    assert 0 < bits < 1.5  # 10 % non-zeros at <= 4 bits plus positions


def test_compress_keras_file(tmp_path, capsys):
    import keras

    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3)])
    model.save(tmp_path / "m.keras")
    out = tmp_path / "m.clz"
    assert main(["compress", str(tmp_path / "m.keras"), "--recipe", "deep_compression", "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "without fine-tuning" in captured.err
    back = cl.load(out)
    assert isinstance(back, keras.Model)
    k = next(layer for layer in back.layers if type(layer).__name__ == "Dense").kernel.numpy()
    assert (k == 0).mean() >= 0.9 and np.unique(k[k != 0]).size <= 32


def test_inspect_missing_and_corrupt(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none.clz")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.clz").write_bytes(b"not a zip")
    assert main(["inspect", str(tmp_path / "bad.clz")]) == 2
