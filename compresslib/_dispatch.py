"""Which framework a model belongs to, and lazy import of its backend.

``import compresslib`` imports neither torch nor tensorflow; the backend is
imported the first time a model of that framework is passed to a verb.

Example:
    >>> from compresslib._dispatch import framework_of
    >>> framework_of(object())
    Traceback (most recent call last):
    ...
    TypeError: model must be a torch.nn.Module or a Keras 3 model, got object
"""
from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any

FRAMEWORKS = ("torch", "keras")

_EXTRA = {"torch": "torch", "keras": "keras"}


def _is_torch_model(model: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def _is_keras_model(model: Any) -> bool:
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model):
        return True
    # Model-like wrappers from compresslib.keras (e.g. a LiteRT interpreter) say so themselves.
    return getattr(model, "__compresslib_framework__", None) == "keras"


def framework_of(model: Any) -> str:
    """Return ``"torch"`` or ``"keras"`` for a model, or raise ``TypeError``.

    Neither framework is imported here: a model can only be a torch module if
    torch is already imported (the model was made with it).
    """
    if getattr(model, "__compresslib_framework__", None) in FRAMEWORKS:
        return model.__compresslib_framework__
    # Keras first: under KERAS_BACKEND=torch a Keras model is also a torch.nn.Module
    if _is_keras_model(model):
        return "keras"
    if _is_torch_model(model):
        return "torch"
    raise TypeError(
        "model must be a torch.nn.Module or a Keras 3 model, "
        f"got {type(model).__name__}"
    )


def check_framework(framework: str) -> str:
    """Validate a ``framework`` argument."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    return framework


def backend(framework: str, module: str) -> ModuleType:
    """Import ``compresslib.<framework>.<module>`` with a clear error if the framework is missing.

    Torch is always imported before TensorFlow: importing them the other way
    round in one process can crash on some builds.
    """
    check_framework(framework)
    try:
        if framework == "keras" and "torch" not in sys.modules:
            try:  # import order: torch before tensorflow
                import torch  # noqa: F401
            except ImportError:
                pass
        return importlib.import_module(f"compresslib.{framework}.{module}")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("torch", "keras", "tensorflow"):
            raise ImportError(
                f"compresslib needs {exc.name.split('.')[0]} for {framework} models: "
                f"pip install 'compresslib[{_EXTRA[framework]}]'"
            ) from exc
        raise


# optional packages -> the compresslib extra that installs them
EXTRAS = {"onnxruntime": "onnx", "onnx": "onnx", "onnxscript": "onnx", "openvino": "openvino", "tf2onnx": "onnx",
          "ai_edge_litert": "keras"}


def require(*modules: str) -> ModuleType:
    """Import ``modules`` (return the last) or raise an ImportError naming the compresslib extra that installs it.

    Example:
        >>> require("json").dumps([1])
        '[1]'
        >>> require("no_such_package_here")
        Traceback (most recent call last):
        ...
        ImportError: this needs the 'no_such_package_here' package: pip install 'compresslib[no_such_package_here]'
    """
    mod = None
    for module in modules:
        try:
            mod = importlib.import_module(module)
        except ImportError as exc:
            raise ImportError(f"this needs the '{module}' package: "
                              f"pip install 'compresslib[{EXTRAS.get(module, module)}]'") from exc
    return mod


def dispatch(model: Any, module: str) -> ModuleType:
    """The backend module for ``model``'s framework."""
    return backend(framework_of(model), module)
