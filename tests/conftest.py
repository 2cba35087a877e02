"""Shared fixtures. Torch is imported before TensorFlow (importing them the other way round can crash)."""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CI", "1")  # no progress bars in tests

import numpy as np
import pytest
import torch  # noqa: E402  (must precede tensorflow)

import compresslib as cl

# Scripts run in subprocesses by tests (never imported here: torch_backend_run.py blocks TensorFlow
# imports for the whole process it runs in, and --doctest-modules would import it).
collect_ignore = ["keras/torch_backend_run.py", "keras/mirrored_run.py", "torch/ddp_run.py"]


def _torch_devices() -> list:
    return ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]


@pytest.fixture(params=_torch_devices())
def torch_device(request) -> str:
    """Each torch test runs on CPU, and on CUDA where present (TF32 off: tests compare float32 math)."""
    if request.param == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    return request.param


def _keras_has_gpu() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@pytest.fixture(params=["cpu", "gpu"])
def keras_device(request):
    """Each Keras test runs on CPU, and on GPU where TensorFlow sees one; yields a device scope."""
    import tensorflow as tf

    if request.param == "gpu" and not _keras_has_gpu():
        pytest.skip("no GPU for TensorFlow")
    with tf.device("/GPU:0" if request.param == "gpu" else "/CPU:0"):
        yield request.param


@pytest.fixture(scope="session")
def mnist_test():
    """(x, y) of the 2,000 test digits, layout (N, 28, 28)."""
    return cl.datasets.load_mnist("test")


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(scope="module")
def record(request):
    """The cached results record the test module names in ``RECORD = (results folder, script)``
    (``tests/cached_results.py``); the module is skipped when the record is missing."""
    from tests.cached_results import read_record

    return read_record(*request.module.RECORD)


@pytest.fixture(scope="module")
def fashion():
    """``(x NCHW, x NHWC, y)``: the 10,000 Fashion-MNIST test images in both layouts."""
    from tests.cached_results import fashion_test

    return fashion_test()
