"""Chapter 5's main result is cached: compresslib/data/results/05_residual_fashion.json, written by
scripts/residual_fashion.py. These tests check the file against the script, re-derive every
accuracy and paired test from the per-image record, and re-run the teacher on test images to
check its cached per-image verdicts."""
import json
import sys
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import torch

import compresslib as cl
from compresslib.core import stats
from compresslib.keras import models as km
from compresslib.torch import models as tm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import residual_fashion as exp  # noqa: E402

scipy_stats = pytest.importorskip("scipy.stats")


@pytest.fixture(scope="module")
def cache():
    path = resources.files("compresslib.data").joinpath("results/05_residual_fashion.json")
    return json.loads(path.read_text())


def test_cache_matches_the_script(cache):
    assert cache["teacher"] == exp.TEACHER and cache["students"] == list(exp.STUDENTS)
    assert cache["recipe"] == exp.RECIPE and cache["distill"] == exp.DISTILL
    assert cache["train_images"] == exp.TRAIN_IMAGES and not cache["quick"]
    assert cache["test_images"] == 10_000
    expected = {f"{fw}/{n}/{m}" for fw in ("torch", "keras") for n in exp.STUDENTS
                for m in ("alone", "distilled")}
    expected |= {f"{fw}/{exp.TEACHER}/teacher" for fw in ("torch", "keras")}
    assert set(cache["runs"]) == expected


def test_sizes_recount(cache):
    """Params and MACs of every run equal a fresh build's, in its framework."""
    x0 = torch.zeros(1, 1, 28, 28)
    counted: dict = {}
    for key, run in cache["runs"].items():
        arch = cl.zoo.RECIPES[exp.TEACHER].arch if run["mode"] == "teacher" else run["model"]
        fw = run["framework"]
        if (fw, arch) not in counted:  # alone and distilled share an architecture: count it once
            r = (cl.measure(tm.build(arch), example_input=x0, latency=False) if fw == "torch"
                 else cl.measure(km.build(arch), latency=False))
            counted[fw, arch] = (r.params, r.macs)
        assert (run["params"], run["macs"]) == counted[fw, arch], key


def test_accuracies_and_paired_tests_rederive(cache):
    """Each accuracy is the mean of its per-image record; McNemar's p for distilled against alone
    equals scipy's exact binomial test on the discordant images."""
    n = cache["test_images"]
    for key, run in cache["runs"].items():
        bits = stats.unpack_correctness(run["correct"], n)
        assert run["accuracy"] == int(bits.sum()) / n, key
        assert 0.80 < run["accuracy"] < 0.97, key
    for fw in ("torch", "keras"):
        for name in exp.STUDENTS:
            a = stats.unpack_correctness(cache["runs"][f"{fw}/{name}/alone"]["correct"], n)
            d = stats.unpack_correctness(cache["runs"][f"{fw}/{name}/distilled"]["correct"], n)
            r = stats.paired(None, a, d)
            b, c = int((a & ~d).sum()), int((d & ~a).sum())
            assert (r.only_a, r.only_b) == (b, c)
            ref = scipy_stats.binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
            assert r.p_value == pytest.approx(ref, rel=1e-9, abs=1e-12), f"{fw}/{name}"


def test_keras_runs_are_the_torch_networks(cache):
    """Each Keras record is its PyTorch student moved by ``cl.transfer``: the same sizes, and the
    same verdict on all but a handful of the 10,000 images (float rounding near a tie)."""
    n = cache["test_images"]
    for name in exp.STUDENTS:
        for mode in ("alone", "distilled"):
            t, k = (cache["runs"][f"{fw}/{name}/{mode}"] for fw in ("torch", "keras"))
            assert k["trained_in"] == "torch (cl.transfer)" and t["trained_in"] == "torch"
            assert (k["params"], k["macs"], k["loss"]) == (t["params"], t["macs"], t["loss"])
            bt, bk = (stats.unpack_correctness(r["correct"], n) for r in (t, k))
            assert (bt != bk).sum() <= 5, f"{name}/{mode}"


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_teacher_verdicts_rerun(cache, framework):
    """The zoo teacher, run here on the first 1,000 test images, gets right exactly the images the
    cache says it did (torch and Keras: the same shipped weights, each its own run)."""
    model = cl.zoo.pretrained(exp.TEACHER, framework=framework)
    x, y = cl.datasets.load_fashion_mnist("test", layout=framework)
    if framework == "torch":
        with torch.inference_mode():
            pred = model.eval()(torch.from_numpy(x[:1000])).argmax(1).numpy()
    else:
        pred = np.concatenate([np.asarray(model(x[i:i + 500])).argmax(1) for i in (0, 500)])
    cached = stats.unpack_correctness(cache["runs"][f"{framework}/{exp.TEACHER}/teacher"]["correct"],
                                      cache["test_images"])[:1000]
    assert ((pred == y[:1000]) == cached).sum() >= 999  # at most one image flips on float rounding


def test_training_subset_is_fixed():
    """The script's training subset: 10,000 images, the same ones in both layouts, every class."""
    (xt, yt), (xte, _) = exp.data("torch")
    (xk, yk), _ = exp.data("keras")
    assert len(xt) == exp.TRAIN_IMAGES and len(xte) == 10_000
    assert (yt == yk).all() and np.array_equal(xt[:, 0], xk[..., 0])
    assert np.bincount(yt, minlength=10).min() > 0.08 * exp.TRAIN_IMAGES
