"""One thread count for PyTorch, TensorFlow and the runtimes (compresslib.threads)."""
import os

import pytest
import torch  # noqa: F401  (torch before tensorflow)

import compresslib as cl
from compresslib.runtimes import check_threads


@pytest.fixture(autouse=True)
def restore_threads():
    before = torch.get_num_threads()
    yield
    cl.set_threads(None)
    torch.set_num_threads(before)


def test_one_count_reaches_torch_and_the_runtime_default():
    done = cl.set_threads(1)
    assert done["threads"] == 1 and done["torch"] == 1
    assert torch.get_num_threads() == 1
    assert cl.get_threads() == 1 and check_threads(None) == 1
    assert check_threads(3) == 3  # an explicit count still wins


def test_none_means_all_cores():
    cl.set_threads(1)
    assert cl.set_threads(None)["threads"] == (os.cpu_count() or 1) == cl.get_threads()


@pytest.mark.parametrize("bad", [0, -2, 1.5, "2", True])
def test_a_bad_count_is_refused_naming_the_argument(bad):
    with pytest.raises(ValueError, match="threads must be a positive integer"):
        cl.set_threads(bad)


def test_runtime_models_loaded_later_use_the_count(tmp_path):
    pytest.importorskip("onnxruntime")
    from compresslib.torch import models

    from compresslib.deploy import load

    cl.set_threads(1)
    x = torch.zeros(1, 1, 28, 28)
    assert cl.export(models.build("lenet300_100"), tmp_path / "m.onnx", "onnxruntime", example_input=x).threads == 1
    cl.set_threads(None)
    assert load(str(tmp_path / "m.onnx")).threads == (os.cpu_count() or 1)
