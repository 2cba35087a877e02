"""Keras side of ``.clz`` files: the model's JSON config plus its weights.

The config is Keras's own ``model.to_json()``; loading goes through
``keras.models.model_from_json`` in Keras's safe mode (no lambdas, no
pickled code). Custom compresslib layers are registered with
``keras.saving.register_keras_serializable(package="compresslib")``.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> spec, tensors = export(m)
    >>> sorted(tensors)
    ['w000', 'w001']
"""
from __future__ import annotations

import json

import keras
import numpy as np


def export(model) -> tuple[dict, dict[str, np.ndarray]]:
    """Describe ``model`` as ``(spec, tensors)`` for :func:`compresslib.io.save`."""
    if hasattr(model, "clz_export"):  # compresslib model-like wrappers describe themselves
        return model.clz_export()
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model, got {type(model).__name__}")
    weights = model.get_weights()
    tensors = {f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)}
    try:
        config = json.loads(model.to_json())
    except NotImplementedError as exc:  # a subclassed model without get_config
        raise TypeError(f"model: cannot save the subclassed model {type(model).__name__}: Keras cannot describe it "
                        f"without get_config(); give it get_config()/from_config() (and register it with "
                        f"keras.saving.register_keras_serializable) or build it as a functional model") from exc
    spec = {"kind": "keras_model", "config": config}
    quantized = _quantized_sublayers(model)
    if quantized:
        spec["quantized"] = quantized
    bf16 = _bfloat16_to_bits(tensors)
    if bf16:
        spec["bfloat16"] = bf16
    return spec, tensors


def _quantized_sublayers(model) -> list:
    """``[[index, class name, mode], ...]`` of Keras-quantized layers (``model.quantize``) in flattening order.

    A layer's config records its own quantization, but a layer that holds others (the
    ``EinsumDense`` projections of ``MultiHeadAttention``, the layers a subclassed model creates in
    ``__init__``) does not record theirs, so loading must quantize them again before the weights fit.
    """
    return [[i, type(layer).__name__, layer.quantization_mode]
            for i, layer in enumerate(model._flatten_layers(include_self=False, recursive=True))
            if getattr(layer, "quantization_mode", None)]


def _requantize(model, quantized: list) -> None:
    import warnings

    layers = list(model._flatten_layers(include_self=False, recursive=True))
    for index, kind, mode in quantized:  # by position: a subclassed model's sublayers get new names
        if index >= len(layers) or type(layers[index]).__name__ != kind:
            raise ValueError(f"file: quantized {kind} layer #{index} is not in the rebuilt model")
        if getattr(layers[index], "quantization_mode", None) is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                layers[index].quantize(mode)


def _bfloat16_to_bits(tensors: dict[str, np.ndarray]) -> list[str]:
    """bfloat16 arrays (ml_dtypes) stored as their uint16 bits; returns their names (for quantized models)."""
    names = [k for k, v in tensors.items() if v.dtype.name == "bfloat16"]
    for k in names:
        tensors[k] = tensors[k].view(np.uint16)
    return names


def _bits_to_bfloat16(tensors: dict[str, np.ndarray], names: list[str]) -> None:
    import ml_dtypes

    for k in names:
        tensors[k] = np.asarray(tensors[k]).view(ml_dtypes.bfloat16)


def rebuild(spec: dict, tensors: dict[str, np.ndarray]):
    """Inverse of :func:`export`: a new Keras model with the saved weights."""
    kind = spec.get("kind", "keras_model")
    if kind != "keras_model":
        return _wrapper_rebuild(kind, spec, tensors)
    import compresslib.keras  # noqa: F401  (registers compresslib's serializable layers)

    _import_custom_layers()
    previous = keras.config.dtype_policy()
    policy = spec["config"].get("config", {}).get("dtype")  # a subclassed model's layers take the global policy
    try:
        if isinstance(policy, dict) and policy.get("class_name") == "DTypePolicy":
            keras.config.set_dtype_policy(policy["config"]["name"])
        model = keras.models.model_from_json(json.dumps(spec["config"]))
    finally:
        keras.config.set_dtype_policy(previous)
    _requantize(model, spec.get("quantized", []))
    _bits_to_bfloat16(tensors, spec.get("bfloat16", []))
    model.set_weights([tensors[k] for k in sorted(tensors)])
    return model


# kind -> callable(spec, tensors) for compresslib's model-like wrappers (e.g. LiteRT int8 models)
WRAPPER_LOADERS: dict = {}


def _wrapper_rebuild(kind: str, spec: dict, tensors: dict[str, np.ndarray]):
    _import_custom_layers()
    if kind not in WRAPPER_LOADERS:
        raise ValueError(f"unknown Keras model kind {kind!r} in file; known: {('keras_model',) + tuple(WRAPPER_LOADERS)}")
    return WRAPPER_LOADERS[kind](spec, tensors)


def _import_custom_layers() -> None:
    """Import compresslib's Keras modules that register custom layers or wrapper loaders."""
    import importlib

    for name in ("quantization", "pruning", "lowrank", "fold", "layers"):
        try:
            importlib.import_module(f"compresslib.keras.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"compresslib.keras.{name}":
                raise
