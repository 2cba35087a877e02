import json

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
