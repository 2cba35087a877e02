"""Shared by the tests of the cached Fashion-MNIST results (``compresslib/data/results/<name>/record.json``,
written by ``scripts/<script>.py``): reading a record, and the test images in both layouts."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "compresslib" / "data" / "results"
sys.path.insert(0, str(ROOT / "scripts"))  # so that a test can import the script that wrote its record


def read_record(name: str, script: str) -> dict:
    """The record of ``RESULTS/name``; the test is skipped when it is missing."""
    path = RESULTS / name / "record.json"
    if not path.exists():  # a fresh checkout ships it; only a branch that has not run the script lacks it
        pytest.skip(f"{path} is missing: run python scripts/{script}.py")
    return json.loads(path.read_text())


def fashion_test() -> tuple:
    """``(x NCHW, x NHWC, y)``: the 10,000 Fashion-MNIST test images in both layouts."""
    import compresslib as cl

    x, y = cl.datasets.load_fashion_mnist("test", layout="torch")
    xk, _ = cl.datasets.load_fashion_mnist("test", layout="keras")
    return x, xk, y
