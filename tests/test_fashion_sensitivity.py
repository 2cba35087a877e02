"""Chapter 3's cached sensitivity scan (scripts/fashion_sensitivity.py) agrees with the shipped network.

The chapter draws its Fashion-MNIST sensitivity curves from a cache; this test recomputes two of its
points (the most and the least sensitive layer at half their channels) on the scan's first 500 images
and checks every image's outcome, and checks the cache's own bookkeeping (accuracies = its bits).
"""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

import compresslib as cl
from compresslib.core import stats

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "compresslib" / "data" / "results" / "fashion_prune" / "sensitivity.json"


def _script():
    spec = importlib.util.spec_from_file_location("fashion_sensitivity", ROOT / "scripts" / "fashion_sensitivity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_bits = stats.unpack_correctness


@pytest.fixture(scope="module")
def scan():
    return json.loads(CACHE.read_text())


def test_the_cache_is_consistent(scan):
    n = scan["images"]
    assert len(scan["layers"]) == 9 and all(len(v["points"]) == len(scan["ratios"]) for v in scan["layers"].values())
    assert _bits(scan["baseline"]["correct"], n).mean() == pytest.approx(scan["baseline"]["accuracy"])
    for layer in scan["layers"].values():
        for p in layer["points"]:
            assert _bits(p["correct"], n).mean() == pytest.approx(p["accuracy"])


def test_two_points_recomputed_image_by_image(scan):
    s = _script()
    model = cl.zoo.pretrained(s.MODEL, framework="torch").eval()
    x, y = cl.datasets.load_fashion_mnist("test", layout="torch")
    idx = s.sample(scan["images"], scan["seed"])[:500]
    half = scan["ratios"].index(0.5)
    by_acc = sorted(scan["layers"], key=lambda k: scan["layers"][k]["points"][half]["accuracy"])
    torch.set_num_threads(2)
    for name in (by_acc[0], by_acc[-1]):
        live = s.correct(s.switch_off(model, name, 0.5), x[idx], y[idx])
        cached = _bits(scan["layers"][name]["points"][half]["correct"], scan["images"])[:500]
        assert (live == cached).all(), name
    assert s.internal_convs(model) == list(scan["layers"])
