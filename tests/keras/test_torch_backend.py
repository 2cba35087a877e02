"""Keras 3 models on the torch backend (how Keras runs on a GPU machine without TensorFlow).

``torch_backend_run.py`` runs in a subprocess with ``KERAS_BACKEND=torch``, ``KERAS_TORCH_DEVICE``
set to the parameter and TensorFlow imports blocked; it prints what each verb produced and this
test asserts on it. CPU always; CUDA where torch sees a GPU.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("torch_backend_run.py")


def _devices() -> list:
    return ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(scope="module", params=_devices())
def result(request) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KERAS_")}
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(SCRIPT), request.param], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _ok(result: dict, key: str) -> dict:
    value = result[key]
    assert not (isinstance(value, dict) and "error" in value), f"{key}: {value}"
    return value


def test_models_are_keras_on_torch_and_on_the_device(result):
    assert result["backend"] == "torch" and not result["tensorflow_imported"]
    framework, is_module, device = _ok(result, "framework")
    assert framework == "keras" and is_module  # a torch.nn.Module, yet dispatched to the Keras handlers
    assert device.startswith(result["device"])
    assert result["input_untouched"]


def test_measure(result):
    r = _ok(result, "measure")
    assert r["params"] == r["expected_params"] == 61706
    assert r["device"] == result["device"] and r["batch_size"] == 16 and r["latency_ms"] > 0
    assert r["accuracy"] == r["evaluate"]


def test_keras_native_int8_and_bfloat16(result):
    wo = _ok(result, "weight_only")
    assert wo["dense_kernel_dtypes"] == ["int8"] and wo["cosine"] > 0.999
    half = _ok(result, "bfloat16")
    assert half["policy"] == "bfloat16" and half["cosine"] > 0.999


def test_qat_layers_train_and_convert_to_the_4_bit_grid(result):
    q = _ok(result, "qat")
    assert q["fake_quant_layers"] == ["FakeQuantConv2D", "FakeQuantDense"]
    assert 2 < q["max_levels_per_channel"] <= 16


def test_pruning(result):
    assert set(_ok(result, "magnitude")["zero_fraction"].values()) == {0.5}
    assert _ok(result, "nm")["max_nonzeros_per_4"] == 2
    s = _ok(result, "structured")
    assert s["shape"] == [4, 10] and s["params"] < 0.5 * s["before"]


def test_low_rank_and_folding(result):
    d = _ok(result, "svd")
    assert d["shape"] == [4, 10] and d["params"] < d["before"]
    f = _ok(result, "fold")
    assert f["batchnorms"] == 0 and f["max_abs_diff"] < 1e-4


def test_save_load_round_trip(result):
    s = _ok(result, "save_load")
    assert s["framework"] == "keras" and s["max_abs_diff"] == 0.0 and s["bytes"] > 200_000


@pytest.mark.parametrize("key", ["litert_dynamic", "litert_static"])
def test_litert_paths_say_they_need_tensorflow(result, key):
    what = {"litert_dynamic": "Int8Dynamic", "litert_static": "Int8Static"}[key]
    assert result[key]["error"].startswith(f"ValueError: model: {what} converts Keras models with TensorFlow's LiteRT")
    assert "KERAS_BACKEND=tensorflow" in result[key]["error"] and "'torch' backend" in result[key]["error"]
