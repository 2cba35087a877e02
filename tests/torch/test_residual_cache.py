"""Chapter 5 plots cached training runs (compresslib/data/results/05_residual.json, made by
scripts/residual_experiments.py). These tests check the file against the script and re-train one member."""
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.keras import models as km
from compresslib.torch import models as tm

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import residual_experiments as exp  # noqa: E402


@pytest.fixture(scope="module")
def cache():
    return json.loads(resources.files("compresslib.data").joinpath("results/05_residual.json").read_text())


def test_cache_matches_the_script(cache):
    assert cache["recipes"] == {"degradation": exp.RECIPE, "family": exp.FAMILY_RECIPE} and not cache["quick"]
    assert cache["teacher"] == exp.TEACHER and cache["students"] == list(exp.STUDENTS)
    recipe = cl.zoo.RECIPES[exp.TEACHER].as_dict()
    assert recipe.pop("dataset") == "mnist"  # the cache predates the recipe's data-set field
    assert cache["teacher_recipe"] == recipe
    assert cache["degradation"] == list(exp.DEGRADATION)
    expected = {f"{fw}/{n}/alone" for fw in ("torch", "keras") for n in exp.DEGRADATION + exp.STUDENTS}
    expected |= {f"{fw}/{n}/distilled" for fw in ("torch", "keras") for n in exp.STUDENTS}
    expected |= {f"{fw}/{exp.TEACHER}/teacher" for fw in ("torch", "keras")}
    assert set(cache["runs"]) == expected
    for key, run in cache["runs"].items():
        build = tm.build if run["framework"] == "torch" else km.build
        model = build(run["model"])
        params = (sum(p.numel() for p in model.parameters()) if run["framework"] == "torch"
                  else sum(int(np.prod(w.shape)) for w in model.trainable_weights))
        assert run["params"] == params, key
        if run["mode"] != "teacher":
            assert len(run["loss"]) == len(run["test_accuracy"]) == cache["recipes"][run["group"]]["epochs"], key
            assert run["accuracy"] == run["test_accuracy"][-1], key
            assert 0.9 < run["accuracy"] <= 1.0, key


def test_one_member_reproduces_its_cached_run(cache):
    """Re-train torch resnet8_w8 for the first two epochs of its recipe (the step schedule keeps the full
    learning rate for 60 % of the epochs, so a 2-epoch run equals the first two epochs of the 6)."""
    run = cache["runs"]["torch/resnet8_w8/alone"]
    threads = torch.get_num_threads()
    torch.set_num_threads(run["threads"])
    try:
        train, test = exp.data("torch")
        _, record = exp.train("torch", "resnet8_w8", train, test, dict(exp.FAMILY_RECIPE, epochs=2))
    finally:
        torch.set_num_threads(threads)
    assert record["params"] == run["params"] and record["macs"] == run["macs"]
    assert record["loss"] == pytest.approx(run["loss"][:2], rel=2e-3)
    assert record["test_accuracy"] == pytest.approx(run["test_accuracy"][:2], abs=0.003)  # 6 of 2,000 digits
