"""``import compresslib`` and ``compresslib.core`` work where neither torch nor TensorFlow/Keras is installed.

A subprocess blocks those imports (as if they were not installed), imports the package,
runs the core math and checks that the verbs give the clear ImportError/TypeError.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r'''
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "tensorflow", "keras", "torchao", "torch_pruning", "tensorly",
                                  "ai_edge_litert", "tltorch"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Block())
import doctest, pkgutil, importlib
import numpy as np
import compresslib as cl
import compresslib.core as core
failed = 0
for info in pkgutil.iter_modules(core.__path__):
    mod = importlib.import_module(f"compresslib.core.{info.name}")
    failed += doctest.testmod(mod).failed
for name in ("configs", "report", "datasets", "registry"):
    failed += doctest.testmod(importlib.import_module(f"compresslib.{name}")).failed
x, y = cl.datasets.load_mnist("test")
m = cl.core.masks.magnitude_mask(np.arange(8.0).reshape(2, 4), 0.5)
assert int(m.sum()) == 4
try:
    cl.registry.load_backend("torch")
except ImportError as exc:
    assert "pip install 'compresslib[torch]'" in str(exc), exc
else:
    raise AssertionError("torch backend loaded without torch")
try:
    cl.prune(object(), cl.Magnitude(0.5))
except TypeError as exc:
    assert "torch.nn.Module or a Keras 3 model" in str(exc)
print("doctest failures", failed, "| torch" , "torch" in sys.modules, "| tensorflow", "tensorflow" in sys.modules)
'''


def test_core_and_import_work_without_frameworks():
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "doctest failures 0 | torch False | tensorflow False"
