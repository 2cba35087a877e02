"""compresslib: model compression for PyTorch and Keras 3.

Every verb takes a model of either framework and returns a new model of the
same framework; the input model is never changed. Nothing here imports torch
or tensorflow until a model (or ``framework=``) asks for it.

Example:
    >>> import compresslib as cl
    >>> x, y = cl.datasets.load_mnist("test")
    >>> x.shape, y.shape
    ((2000, 28, 28), (2000,))
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module that defines it (imported on first attribute access)
_LAZY = {
    # modules
    "datasets": "compresslib.datasets",
    "zoo": "compresslib.zoo",
    "configs": "compresslib.configs",
    "core": "compresslib.core",
    "report": "compresslib.report",
    # verbs
    "measure": "compresslib.api",
    "compare": "compresslib.report",
    "Report": "compresslib.report",
    "framework_of": "compresslib._dispatch",
    "quantize": "compresslib.api",
    "compress": "compresslib.pipeline",
    "prepare_qat": "compresslib.api",
    "convert": "compresslib.api",
    "prune": "compresslib.api",
    "decompose": "compresslib.api",
    "transform": "compresslib.api",
    "perplexity": "compresslib.api",
    "apply": "compresslib.api",
    "registry": "compresslib.registry",
    "fold_batchnorm": "compresslib.api",
    "save": "compresslib.api",
    "load": "compresslib.api",
    "export": "compresslib.deploy",
    "transfer": "compresslib.twin",
    "optimize": "compresslib.optimizer",
    "Budget": "compresslib.configs",
    "set_threads": "compresslib.threads",
    "get_threads": "compresslib.threads",
}
_CONFIG_NAMES = (
    "Int8Dynamic", "Int8Static", "WeightOnly", "Float16", "BFloat16", "QAT", "WeightSharing",
    "Magnitude", "Structured", "NM", "SVD", "Tucker", "CP",
    "Float8Dynamic", "Int8DynamicCUDA", "Int4WeightOnlyCUDA", "Sparse24", "Auto", "SmoothQuant",
    "GPTQ", "AWQ", "Wanda", "SparseGPT",
)
_LAZY.update({name: "compresslib.configs" for name in _CONFIG_NAMES})

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if _LAZY[name].rsplit(".", 1)[-1] == name else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'compresslib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
