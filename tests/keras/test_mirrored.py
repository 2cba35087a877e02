"""fit(..., distributed=strategy) under tf.distribute.MirroredStrategy over two logical CPU devices.

Keras 3's ``keras.distribution`` is JAX-only (JAX is not installed here); on the TensorFlow backend
``model.fit`` runs under a ``tf.distribute`` strategy, which is what compresslib's Keras ``fit`` uses.
``mirrored_run.py`` runs in a process of its own (TensorFlow's logical devices must be set before it starts)
and prints what it found; replicas must agree bit for bit, and a one-device run over the same global batches
must agree up to the order of floating-point sums (the QAT rounding grid magnifies that a little).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch  # noqa: F401  (torch before tensorflow)

from tests.fit_data import ROOT


@pytest.fixture(scope="module")
def found(tmp_path_factory) -> dict:
    out = str(tmp_path_factory.mktemp("mirrored"))
    script = os.path.join(ROOT, "tests", "keras", "mirrored_run.py")
    proc = subprocess.run([sys.executable, script, out], cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["files"] = sorted(os.listdir(out))
    return result


def test_replicas_agree_bit_for_bit(found):
    assert found["replicas"] == 2
    assert found["qat_replicas_differ"] == 0.0
    assert found["pruning_replicas_differ"] == 0.0


def test_masks_and_weights_match_one_device(found):
    assert found["masks_equal_one"] and found["zeros_kept"]
    assert found["sparsity"] == {"hidden": 0.75, "out": 0.75}
    assert found["pruning_vs_one"] < 1e-5
    assert found["qat_vs_one"] < 1e-3


def test_model_outside_the_scope_is_trained_and_checkpoints_written(found):
    assert found["outside_trained"]
    assert found["files"] == ["interrupted.npz", "pruning1.npz", "pruning2.npz"]


def test_interrupted_distributed_run_resumes_bit_identical(found):
    assert found["resumed_equal"]
