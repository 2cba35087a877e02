import subprocess
import sys

import pytest

import compresslib as cl


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout


def test_import_is_light_and_fast():
    out = _run(
        "import time, sys; t = time.process_time(); import compresslib as cl; "
        "cl.datasets; cl.configs; cl.Magnitude; dt = time.process_time() - t; "
        "print(dt, 'torch' in sys.modules, 'tensorflow' in sys.modules, 'keras' in sys.modules)"
    )
    dt, torch_loaded, tf_loaded, keras_loaded = out.split()
    assert (torch_loaded, tf_loaded, keras_loaded) == ("False", "False", "False")
    assert float(dt) <= 0.3


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no_such_thing"):
        cl.no_such_thing


def test_every_public_name_resolves():
    for name in cl.__all__:
        if name in ("measure", "quantize", "prune", "save", "load"):  # verbs: callables
            assert callable(getattr(cl, name))
        else:
            assert getattr(cl, name) is not None


def test_not_a_model_is_a_clear_type_error():
    with pytest.raises(TypeError, match="model must be a torch.nn.Module or a Keras 3 model"):
        cl.measure([1, 2, 3])


def test_missing_backend_gives_import_error_naming_the_extra(monkeypatch):
    from compresslib import _dispatch

    def fail(name):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(_dispatch.importlib, "import_module", fail)
    with pytest.raises(ImportError, match=r"compresslib\[torch\]"):
        _dispatch.backend("torch", "measure")
    with pytest.raises(ValueError, match="framework"):
        _dispatch.backend("jax", "measure")


def test_config_type_errors_name_the_argument():
    import torch

    m = torch.nn.Linear(2, 2)
    with pytest.raises(TypeError, match="config must be one of .*Magnitude"):
        cl.prune(m, cl.Int8Static())
    with pytest.raises(TypeError, match="config must be one of .*Int8Static"):
        cl.quantize(m, cl.Magnitude(0.5))
