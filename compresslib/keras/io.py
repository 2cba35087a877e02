"""Keras side of ``.clz`` files: the model's JSON config plus its weights.

The config is Keras's own ``model.to_json()``. Loading first walks the whole
config and accepts only objects it can name exactly: Keras's public layers,
initializers, regularizers, constraints, activations, dtype policies,
quantizers, and the losses, metrics and optimizers of a compiled model (minus the layers that load code or files: ``Lambda``,
``TFSMLayer``, ``TorchModuleWrapper``, ``JaxLayer``, ``FlaxLayer``),
compresslib's registered layers (:func:`compresslib.io.register_class`) and the
objects the caller passes as ``load(path, custom_objects=...)``. Objects that
other libraries registered globally with Keras are refused. Keras then builds
the model in safe mode (no lambdas, no pickled code), with its variables left
uninitialised until their shapes have been checked against the file's tensors,
so a config cannot make ``load`` allocate more than the file holds.

Example:
    >>> import keras
    >>> m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
    >>> spec, tensors = to_spec(m)
    >>> sorted(tensors)
    ['w000', 'w001']
    >>> "keras.layers.Lambda" in builtin_objects(), "keras.layers.Dense" in builtin_objects()
    (False, True)
"""
from __future__ import annotations

import contextlib
import json
import re
import warnings
from collections.abc import Mapping
from typing import Any, Optional

import keras
import numpy as np

# Public Keras namespaces whose classes (and, in _FUNCTION_NAMESPACES, functions) a .clz config may name
# (losses, metrics and optimizers appear in the compile_config of a compiled model).
BUILTIN_NAMESPACES = ("layers", "initializers", "regularizers", "constraints", "activations", "dtype_policies",
                      "quantizers", "models", "losses", "metrics", "optimizers", "optimizers.schedules")
_FUNCTION_NAMESPACES = ("activations", "losses", "metrics")
# Public layers that run code or read files named by their config: never rebuilt from a file.
REFUSED_LAYERS = ("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer")
_NOT_OBJECTS = ("get", "serialize", "deserialize")
# Keras's pure-data markers inside a config (a symbolic tensor, a tuple, ...).
_SPECIAL = ("__keras_tensor__", "__tuple__", "__ellipsis__", "__slice__")
_WEIGHT_NAME = re.compile(r"w(\d{3,})")

_REGISTRY: dict[str, Any] = {}  # registered name -> class
_builtins: Optional[dict[str, Any]] = None


def is_registrable(cls: type) -> bool:
    """Whether ``cls`` is a Keras class :func:`register` accepts (layer, initializer, regularizer, constraint)."""
    bases = (keras.layers.Layer, keras.initializers.Initializer, keras.regularizers.Regularizer,
             keras.constraints.Constraint)
    return isinstance(cls, type) and issubclass(cls, bases)


def register(cls: type, name: Optional[str] = None) -> type:
    """Add a Keras class to compresslib's registry under ``name`` (default: Keras's registered name).

    Use :func:`compresslib.io.register_class`, which calls this for Keras classes.
    """
    if not is_registrable(cls):
        raise TypeError(f"cls must be a Keras layer, initializer, regularizer or constraint class, got {cls!r}")
    name = keras.saving.get_registered_name(cls) if name is None else name
    taken = _REGISTRY.get(name)
    if taken is not None and taken is not cls:
        raise ValueError(f"name {name!r} is already registered for {taken.__module__}.{taken.__qualname__}")
    _REGISTRY[name] = cls
    return cls


def registered_objects() -> dict[str, Any]:
    """A copy of compresslib's Keras registry (registered name -> class)."""
    _import_custom_layers()
    return dict(_REGISTRY)


def builtin_objects() -> dict[str, Any]:
    """Keras's own objects a config may name, by the exact ``module.class_name`` Keras writes."""
    global _builtins
    if _builtins is None:
        table: dict[str, Any] = {}
        for ns in BUILTIN_NAMESPACES:
            mod = keras
            for part in ns.split("."):  # fixed names, never from a file
                mod = getattr(mod, part)
            for attr in dir(mod):
                if attr.startswith("_") or attr in _NOT_OBJECTS or (ns == "layers" and attr in REFUSED_LAYERS):
                    continue
                obj = getattr(mod, attr)
                if isinstance(obj, type) or (ns in _FUNCTION_NAMESPACES and callable(obj)):
                    table[f"keras.{ns}.{attr}"] = obj
        known = {id(v) for v in table.values()}
        for attr in dir(keras):  # top-level aliases Keras writes, e.g. keras.DTypePolicy
            obj = getattr(keras, attr)
            if isinstance(obj, type) and id(obj) in known:
                table[f"keras.{attr}"] = obj
        from keras.src.models.functional import Functional

        table["keras.src.models.functional.Functional"] = Functional  # how Keras 3 names a functional model
        table.update(_operation_classes())
        _builtins = table
    return _builtins


# Operations that take Python callables in their config (control flow, custom gradients): never from a file.
REFUSED_OPERATIONS = ("Cond", "WhileLoop", "Map", "Scan", "ForiLoop", "AssociativeScan", "Switch",
                      "VectorizedMap", "CustomGradient")


def _operation_classes() -> dict[str, Any]:
    """The ops a functional graph records when a model applies one to a symbolic tensor (``x * y`` in a
    ``keras.applications`` squeeze-and-excitation block is ``keras.src.ops.numpy.Multiply``): the
    ``Operation`` classes Keras defines in ``keras.ops``' own modules, by the module path Keras writes."""
    import importlib

    from keras.src.ops.operation import Operation

    table: dict[str, Any] = {}
    for name in ("core", "image", "linalg", "math", "nn", "numpy"):  # fixed names, never from a file
        try:
            module = importlib.import_module(f"keras.src.ops.{name}")
        except ImportError:
            continue
        for attr, obj in vars(module).items():
            if (isinstance(obj, type) and issubclass(obj, Operation) and obj.__module__ == module.__name__
                    and not attr.startswith("_") and attr not in REFUSED_OPERATIONS):
                table[f"{module.__name__}.{attr}"] = obj
    return table


def check_custom_objects(custom_objects: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """``custom_objects`` for Keras: registered name -> class or function; ``TypeError`` otherwise."""
    if not custom_objects:
        return {}
    bad = [k for k, v in custom_objects.items() if not callable(v)]
    if bad:
        raise TypeError(f"custom_objects values must be classes or functions, got non-callables for {bad}")
    return dict(custom_objects)


# --------------------------------------------------------------------------- save
def to_spec(model) -> tuple[dict, dict[str, np.ndarray]]:
    """Describe ``model`` as ``(spec, tensors)`` for :func:`compresslib.io.save`."""
    if hasattr(model, "clz_spec"):  # compresslib model-like wrappers describe themselves
        return model.clz_spec()
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
    compile_config = config.get("compile_config") if isinstance(config, dict) else None
    if compile_config:  # a loss or metric that is a local function (e.g. a distillation loss) cannot be
        try:            # restored safely: the file keeps the model and leaves it uncompiled
            check_config(compile_config, _REGISTRY)
        except ValueError:
            config = {k: v for k, v in config.items() if k != "compile_config"}
    spec = {"kind": "keras_model", "config": config}
    quantized = _quantized_sublayers(model)
    if quantized:
        spec["quantized"] = quantized
    bf16 = _bfloat16_to_bits(tensors)
    if bf16:
        spec["bfloat16"] = bf16
    from compresslib.keras import packed_io

    packed_io.pack(model, spec, tensors)  # GPTQ/AWQ kernels as codes + scales
    return spec, tensors


_QUANTIZATION_MODES = ("int8", "int4", "float8")


@contextlib.contextmanager
def _dtype_policy_of(config: Any):
    """The model's own global dtype policy while it is built (a subclassed model's layers take the global one)."""
    policy = config.get("config", {}).get("dtype") if isinstance(config, dict) else None
    name = policy.get("config", {}).get("name") if isinstance(policy, dict) and \
        policy.get("class_name") == "DTypePolicy" and isinstance(policy.get("config"), dict) else None
    if not isinstance(name, str) or name not in ("float32", "float16", "bfloat16", "mixed_float16",
                                                 "mixed_bfloat16", "float64"):
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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


# --------------------------------------------------------------------------- load: check, then build
def _where(path: tuple) -> str:
    return "config" + "".join(f"[{p!r}]" for p in path[-6:])


def check_config(config: Any, allowed: Mapping[str, Any]) -> None:
    """Refuse a config that names any object outside Keras's builtins, compresslib's registry and ``allowed``.

    ``allowed`` maps registered names to objects (compresslib's registry plus the caller's
    ``custom_objects``). Walks every nested dict and list; a string that names an object other
    libraries registered globally with Keras is refused too (Keras would resolve it).
    """
    builtins = builtin_objects()
    foreign = set(keras.saving.get_custom_objects()) - set(allowed)
    stack: list[tuple[Any, tuple]] = [(config, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str):
            if value in foreign:
                raise ValueError(f"{_where(path)}: {value[:60]!r} names an object registered with Keras outside "
                                 "compresslib's registry; pass it as load(path, custom_objects=...) if you trust it")
            continue
        if isinstance(value, list):
            stack.extend((v, path + (i,)) for i, v in enumerate(value))
            continue
        if not isinstance(value, dict):
            continue
        if "class_name" in value:
            _check_object(value, path, builtins, allowed)
        for key, item in value.items():
            stack.append((item, path + (key,)))


def _check_object(obj: dict, path: tuple, builtins: Mapping[str, Any], allowed: Mapping[str, Any]) -> None:
    name, module, registered = obj["class_name"], obj.get("module"), obj.get("registered_name")
    if not isinstance(name, str) or not isinstance(module, (str, type(None))) \
            or not isinstance(registered, (str, type(None))):
        raise ValueError(f"{_where(path)}: class_name, module and registered_name must be strings")
    if name.startswith("__"):
        if name not in _SPECIAL:
            raise ValueError(f"{_where(path)}: {name[:40]!r} is not allowed in a .clz file")
        return
    if name == "function":
        function = obj.get("config")
        if (registered or function) in allowed:
            return
        if isinstance(function, str) and module is not None and f"{module}.{function}" in builtins:
            return
        raise ValueError(f"{_where(path)}: function {str(function)[:60]!r} (module {str(module)[:60]!r}) is neither "
                         "a Keras activation nor in compresslib's registry or custom_objects")
    if registered is not None and registered in allowed:
        return
    if module is not None and f"{module}.{name}" in builtins and registered in (None, name):
        return
    shown = f"{module}.{name}" if module else name
    raise ValueError(f"{_where(path)}: class {shown[:100]!r} (registered name {str(registered)[:60]!r}) is not "
                     "allowed: only Keras's public layers (not Lambda, TFSMLayer, TorchModuleWrapper, JaxLayer, "
                     "FlaxLayer), compresslib's registry (compresslib.io.register_class) and "
                     "load(path, custom_objects=...)")


@contextlib.contextmanager
def _safe_mode():
    """Keras's safe mode, forced even if the process called ``keras.config.enable_unsafe_deserialization()``."""
    try:
        from keras.src.saving.serialization_lib import SafeModeScope
    except ImportError:  # a Keras without it: safe_mode=True below still applies
        yield
        return
    with SafeModeScope(True):
        yield


def _pending_variables() -> Optional[list]:
    """Keras's list of variables created in a StatelessScope and not yet initialised (None if unavailable)."""
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        return None
    return global_state.get_global_attribute("uninitialized_variables", [], set_to_default=True)


def _weight_order(tensors: Mapping[str, np.ndarray]) -> list[str]:
    """Tensor names ``w000, w001, ...`` in weight order (by number: ``w1000`` comes after ``w999``)."""
    numbers = {}
    for name in tensors:
        match = _WEIGHT_NAME.fullmatch(name)
        if match is None:
            raise ValueError(f"tensor {name[:40]!r} is not a Keras weight name (w000, w001, ...)")
        numbers[int(match.group(1))] = name
    if sorted(numbers) != list(range(len(numbers))):
        raise ValueError("the weight tensors must be numbered w000, w001, ... without gaps")
    return [numbers[i] for i in range(len(numbers))]


def _build(config: Any, allowed: dict[str, Any], tensors: dict[str, np.ndarray], bfloat16: list,
           quantized: list = ()):
    """Deserialize with variables left uninitialised, check their shapes against ``tensors``, then fill them.

    ``quantized``: Keras-quantized sublayers (``[[index, class, mode], ...]``) to quantize again before the
    weights fit. Quantizing reads the float kernels, so the float model is allocated first, and only when it
    holds no more elements than four times the file's tensors.
    """
    order = _weight_order(tensors)
    compile_config = config.get("compile_config") if isinstance(config, dict) else None
    if compile_config:  # compiled after the weights are set: an optimizer makes variables in __init__
        config = {k: v for k, v in config.items() if k != "compile_config"}
    pending = _pending_variables()
    before = list(pending) if pending is not None else None
    ok = False
    try:
        with keras.saving.custom_object_scope(allowed), _safe_mode(), _dtype_policy_of(config), \
                keras.StatelessScope(initialize_variables=False):
            model = keras.saving.deserialize_keras_object(config, custom_objects=allowed, safe_mode=True)
        if not isinstance(model, keras.Model):
            raise ValueError(f"the config describes a {type(model).__name__}, not a Keras model")
        if quantized:
            declared = sum(int(np.prod(v.shape)) for v in model.weights)
            stored = sum(int(np.size(t)) for t in tensors.values())
            if declared > 4 * stored + 1024:
                raise ValueError(f"the config declares {declared} float weights for a file of {stored} elements")
            if pending is not None:
                ours = pending[len(before):]
                pending[:] = before
                for variable in ours:
                    variable._deferred_initialize()
                before = list(pending)
            _requantize(model, quantized)
        weights = model.weights
        if len(weights) != len(order):
            raise ValueError(f"the config builds {len(weights)} weights, the file holds {len(order)}")
        for variable, name in zip(weights, order):
            shape = tuple(int(d) for d in variable.shape)
            if shape != tuple(np.shape(tensors[name])):
                raise ValueError(f"weight {variable.path} has shape {shape}, tensor {name} "
                                 f"{tuple(np.shape(tensors[name]))}")
        if pending is not None:  # only now, with every shape checked, do the variables get memory
            ours = pending[len(before):]
            pending[:] = before
            for variable in ours:
                variable._deferred_initialize()
        _bits_to_bfloat16(tensors, bfloat16)
        model.set_weights([tensors[k] for k in order])
        if compile_config:
            with keras.saving.custom_object_scope(allowed), _safe_mode():
                model.compile_from_config(compile_config)
            model.compiled = True
        ok = True
        return model
    finally:
        if not ok and pending is not None:
            pending[:] = before  # never leave this file's variables for a later scope to allocate


def from_spec(spec: dict, tensors: dict[str, np.ndarray], *, custom_objects: Optional[Mapping[str, Any]] = None,
            max_bytes: Optional[int] = None, max_depth: int = 100, model: Any = None):
    """Inverse of :func:`to_spec`; packed GPTQ/AWQ kernels (:mod:`compresslib.keras.packed_io`) first
    become float kernels again (checked), then :func:`from_plain_spec` builds the model."""
    from compresslib.keras import packed_io

    spec, tensors, codes = packed_io.unpack(spec, tensors)
    built = from_plain_spec(spec, tensors, custom_objects=custom_objects, max_bytes=max_bytes,
                            max_depth=max_depth, model=model)
    return packed_io.attach(built, codes)


def from_plain_spec(spec: dict, tensors: dict[str, np.ndarray], *, custom_objects: Optional[Mapping[str, Any]] = None,
                    max_bytes: Optional[int] = None, max_depth: int = 100, model: Any = None):
    """Inverse of :func:`to_spec` for a description without packed kernels: a new Keras model with the saved weights.

    ``custom_objects`` (registered name -> class or function) adds to compresslib's registry
    for this call; ``max_bytes`` and ``max_depth`` are accepted for symmetry with the torch
    backend (a Keras model's variables are checked against the file's tensors instead).
    ``model``: an instance of the saved model's own (e.g. subclassed) class whose architecture
    matches the file; its copy receives the weights instead of a model built from the JSON.
    """
    if not isinstance(spec, dict):
        raise ValueError("the Keras model description must be an object")
    _import_custom_layers()
    allowed = {**_REGISTRY, **check_custom_objects(custom_objects)}
    kind = spec.get("kind", "keras_model")
    if kind != "keras_model":
        return _wrapper_from_spec(kind, spec, tensors)
    if model is not None:
        return _onto(model, spec, tensors)
    if not set(spec) <= {"kind", "config", "bfloat16", "quantized"} or "config" not in spec:
        raise ValueError("a Keras model is described by 'kind', 'config' (and 'bfloat16', 'quantized')")
    quantized = spec.get("quantized", [])
    if not isinstance(quantized, list) or not all(
            isinstance(q, list) and len(q) == 3 and isinstance(q[0], int) and not isinstance(q[0], bool)
            and 0 <= q[0] < 1_000_000 and isinstance(q[1], str) and q[2] in _QUANTIZATION_MODES for q in quantized):
        raise ValueError(f"quantized must list [index, layer class, mode] with a mode in {_QUANTIZATION_MODES}")
    bfloat16 = spec.get("bfloat16", [])
    if not isinstance(bfloat16, list) or not all(
            isinstance(k, str) and k in tensors and np.asarray(tensors[k]).dtype == np.uint16 for k in bfloat16):
        raise ValueError("bfloat16 must list uint16 weight tensors of the file")
    config = spec["config"]
    compile_config = config.get("compile_config") if isinstance(config, dict) else None
    if compile_config:
        try:
            check_config(compile_config, allowed)
        except ValueError as exc:  # written before to_spec dropped such configs: the model loads uncompiled
            warnings.warn(f"the model's compile state is not restored ({exc})", UserWarning, stacklevel=3)
            config = {k: v for k, v in config.items() if k != "compile_config"}
    check_config(config, allowed)
    return _build(config, allowed, tensors, bfloat16, quantized)


def _onto(model: Any, spec: dict, tensors: dict[str, np.ndarray]):
    """The file's weights in a copy of ``model`` (same class and weight shapes as the saved one)."""
    from compresslib.keras.rebuild import copy_model

    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a Keras model (an instance of the saved model's class), got "
                        f"{type(model).__name__}")
    saved = spec["config"].get("class_name") if isinstance(spec.get("config"), dict) else None
    if saved not in (None, type(model).__name__):
        raise ValueError(f"the file holds a {str(saved)[:60]!r}, the model given is a {type(model).__name__!r}")
    new = copy_model(model)
    names = _weight_order(tensors)
    _requantize(new, spec.get("quantized", []))
    _bits_to_bfloat16(tensors, spec.get("bfloat16", []))
    current = new.get_weights()
    if len(current) != len(names) or any(tuple(np.shape(tensors[n])) != tuple(np.shape(w))
                                         for n, w in zip(names, current)):
        raise ValueError(f"the file's {len(names)} weights do not fit the model given ({len(current)} weights): "
                         "is it the same architecture?")
    new.set_weights([tensors[n] for n in names])
    return new


def _wrapper_from_spec(kind: str, spec: dict, tensors: dict[str, np.ndarray]):
    """compresslib's model-like wrappers (e.g. LiteRT int8 models), through the registry's model kinds."""
    from compresslib import registry

    if not isinstance(kind, str):
        raise ValueError("the model kind must be a string")
    return registry.kind("keras", kind).from_spec(spec, tensors)


def _import_custom_layers() -> None:
    """Import every module of ``compresslib/keras/`` (they register custom layers and wrapper loaders).

    compresslib's own package lists them; never a name from a file.
    """
    import importlib
    import pkgutil

    import compresslib.keras

    for info in pkgutil.iter_modules(compresslib.keras.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"compresslib.keras.{info.name}")
