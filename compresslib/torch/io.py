"""PyTorch side of ``.clz`` files: a module tree described without pickle.

Every module is stored as its class path (``module.qualname``), its plain
attributes (numbers, strings, booleans, None, torch dtypes and tuples/lists of
them), the names of its parameters and buffers, and its children. Loading
checks the whole description first, then creates each module without running
its constructor, restores the attributes and fills the tensors from the file.
Nothing is unpickled.

Classes come from an exact registry, looked up by the class path the file
names (:func:`lookup_class`): the ``nn.Module`` classes ``torch.nn`` exports,
compresslib's own (registered where they are defined with
:func:`compresslib.io.register_class`), the user's registered ones, and those
passed as ``load(path, custom_objects=...)``. No attribute is walked and no
module named by the file is imported.

Example:
    >>> import torch
    >>> spec, tensors = to_spec(torch.nn.Sequential(torch.nn.Linear(2, 3)))
    >>> sorted(tensors), spec["root"]["children"]["0"]["class"]
    (['0.bias', '0.weight'], 'torch.nn.modules.linear.Linear')
    >>> lookup_class("torch.nn.modules.module.torch.jit.RecursiveScriptModule")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: class 'torch.nn.modules.module.torch.jit.RecursiveScriptModule' is not registered for loading; ...
"""
from __future__ import annotations

import importlib
import inspect
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
               "_load_state_dict_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")
_INTERNAL = {"compresslib_kind", "compresslib_recipe", "compresslib_constants", "compresslib_auto", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "_backward_pre_hooks",
             "_state_dict_pre_hooks", "_load_state_dict_post_hooks", "_forward_hooks_always_called",
             "_is_full_backward_hook", "_compiled_call_impl"} | set(_HOOK_DICTS)
_NODE_KEYS = {"class", "attrs", "params", "buffers", "children", "non_persistent"}


def _derived(module: nn.Module) -> tuple:
    """Attributes a class recomputes from its parameters (not saved; rebuilt by :func:`_refresh`)."""
    if isinstance(module, nn.RNNBase):
        return ("_flat_weights", "_flat_weight_refs")
    return ()


def _refresh(module: nn.Module) -> None:
    """Recompute what :func:`_derived` left out, once the module's parameters are in place."""
    if isinstance(module, nn.RNNBase):
        module._init_flat_weights()
# A module of the user's own (unregistered) class is saved as a "code" node: its class path, tensors and
# children, no attributes. Loading takes that module from the model instance the caller passes
# (load(path, model=MyModel(...))), the PyTorch convention of code + state.
_CODE_KEYS = {"class", "code", "attrs", "params", "buffers", "children", "non_persistent"}

# Modules public torch.nn layers create inside themselves without exporting them from torch.nn.
_INTERNAL_TORCH_CLASSES = (nn.modules.linear.NonDynamicallyQuantizableLinear,)

_REGISTRY: dict[str, type] = {}   # the name a file uses -> class
_NAMES: dict[type, str] = {}      # class -> the name save writes
_filled = False

# torch dtypes an attribute may hold, by exact name ("float32", "qint8", ...)
_TORCH_DTYPES = {str(v).removeprefix("torch."): v for v in vars(torch).values() if isinstance(v, torch.dtype)}


def class_path(cls: type) -> str:
    """``module.qualname`` of a class: the default name under which it is registered and saved."""
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type, name: Optional[str] = None) -> type:
    """Add ``cls`` (an ``nn.Module`` subclass) to the registry under ``name`` (default :func:`class_path`).

    Use :func:`compresslib.io.register_class`, which calls this for torch classes. A second
    name for a class (e.g. its old path after a move) is an alias: loading accepts it,
    saving keeps writing the first.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"cls must be a torch.nn.Module subclass, got {cls!r}")
    name = class_path(cls) if name is None else name
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    taken = _REGISTRY.get(name)
    if taken is not None and taken is not cls:
        raise ValueError(f"name {name!r} is already registered for {class_path(taken)}")
    _REGISTRY[name] = cls
    _NAMES.setdefault(cls, name)
    return cls


def _own_modules() -> list[str]:
    """Every module of ``compresslib/torch/`` (compresslib's classes register where they are defined)."""
    import pkgutil

    import compresslib.torch

    return [f"compresslib.torch.{m.name}" for m in pkgutil.iter_modules(compresslib.torch.__path__)
            if not m.name.startswith("_")]


def _fill_registry() -> None:
    """Register torch.nn's exported module classes and import compresslib's torch modules (once).

    The modules imported are compresslib's own, listed from its package; never a name from a file.
    """
    global _filled
    if _filled:
        return
    _filled = True
    for attr in dir(nn):  # names from torch.nn itself, not from any file
        obj = getattr(nn, attr)
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not obj.__module__.startswith("torch.nn.parallel"):
            register(obj)
    for cls in _INTERNAL_TORCH_CLASSES:
        register(cls)
    for module in _own_modules():
        importlib.import_module(module)


def registered_classes() -> dict[str, type]:
    """A copy of the registry: every class path :func:`lookup_class` accepts, with its class."""
    _fill_registry()
    return dict(_REGISTRY)


def lookup_class(path: object, custom_objects: Optional[Mapping[str, type]] = None) -> type:
    """The class a file names, by exact name: ``custom_objects`` first, then the registry; else ``ValueError``.

    The one place where loading turns a name into a class (the lead's ``load(..., model=)``
    extends it).
    """
    if not isinstance(path, str):
        raise ValueError(f"class must be a string, got {type(path).__name__}")
    if custom_objects and path in custom_objects:
        return custom_objects[path]
    _fill_registry()
    cls = _REGISTRY.get(path)
    if cls is None:
        shown = path if len(path) <= 120 else path[:117] + "..."
        raise ValueError(f"class {shown!r} is not registered for loading; only torch.nn's classes, compresslib's "
                         "own and those registered with compresslib.io.register_class (or passed as "
                         "load(path, custom_objects={path: cls})) are constructed")
    return cls


def check_custom_objects(custom_objects: Optional[Mapping[str, Any]]) -> dict[str, type]:
    """``custom_objects`` for torch: class path -> ``nn.Module`` subclass; ``TypeError`` otherwise."""
    if not custom_objects:
        return {}
    bad = {k: v for k, v in custom_objects.items() if not (isinstance(v, type) and issubclass(v, nn.Module))}
    if bad:
        raise TypeError(f"custom_objects values must be torch.nn.Module subclasses for a torch file, got {bad}")
    return dict(custom_objects)


# --------------------------------------------------------------------------- plain attribute values
def _plain(value: Any) -> Any:
    """JSON form of a plain attribute; raises TypeError for anything else."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, tuple):
        return {"__tuple__": [_plain(v) for v in value]}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, torch.dtype):
        return {"__dtype__": str(value).removeprefix("torch.")}
    name = _FUNCTION_NAMES.get(value) if _hashable(value) else None
    if name is not None:  # e.g. nn.TransformerEncoderLayer.activation = F.relu
        return {"__function__": name}
    raise TypeError("function" if callable(value) else type(value).__name__)


def _hashable(value: Any) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


# The functions a module attribute may hold, by exact name: torch.nn.functional's activations (what
# torch's own layers store, e.g. TransformerEncoderLayer.activation). Nothing else is looked up by name.
_FUNCTIONS = {f"torch.nn.functional.{n}": getattr(torch.nn.functional, n)
              for n in ("relu", "gelu", "silu", "tanh", "sigmoid", "elu", "leaky_relu", "relu6", "hardswish",
                        "hardsigmoid", "mish", "softplus", "selu", "celu", "glu", "softmax", "log_softmax")
              if hasattr(torch.nn.functional, n)}
_FUNCTION_NAMES = {f: n for n, f in _FUNCTIONS.items()}


def _unplain(value: Any, depth: int = 0) -> Any:
    """Inverse of :func:`_plain`; anything :func:`_plain` cannot write is a ``ValueError``."""
    if depth > 32:
        raise ValueError("attribute value nested too deeply")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_unplain(v, depth + 1) for v in value]
    if isinstance(value, dict) and set(value) == {"__tuple__"} and isinstance(value["__tuple__"], list):
        return tuple(_unplain(v, depth + 1) for v in value["__tuple__"])
    if isinstance(value, dict) and set(value) == {"__dtype__"}:
        dtype = _TORCH_DTYPES.get(value["__dtype__"]) if isinstance(value["__dtype__"], str) else None
        if dtype is None:
            raise ValueError(f"not a torch dtype: {str(value['__dtype__'])[:40]!r}")
        return dtype
    if isinstance(value, dict) and set(value) == {"__function__"}:
        fn = _FUNCTIONS.get(value["__function__"]) if isinstance(value["__function__"], str) else None
        if fn is None:
            raise ValueError(f"not an allowed function: {str(value['__function__'])[:60]!r}")
        return fn
    raise ValueError(f"not a plain attribute value: {str(value)[:60]}")


# --------------------------------------------------------------------------- save
def _node(module: nn.Module, prefix: str, tensors: dict[str, np.ndarray]) -> dict:
    _fill_registry()
    cls = type(module)
    if parametrize.is_parametrized(module):
        return _computed_node(module, prefix, tensors)
    path = _NAMES.get(cls)
    where = prefix.rstrip(".") or "the model"
    for hooks in _HOOK_DICTS if path is not None else ():  # a user module's hooks come back with its
        if getattr(module, hooks, None):                     # instance, load(path, model=...)
            raise ValueError(f"cannot save {where}: it has {hooks} (e.g. torch.nn.utils.prune masks); "
                             "remove them first (compresslib's pruning leaves plain weights)")
    if path is None:  # the user's own class: its code stays the user's (see _CODE_KEYS)
        node: dict[str, Any] = {"class": class_path(cls), "code": True, "attrs": _plain_attrs(module)}
        _members(module, node, prefix, tensors)
        return node
    attrs = {}
    derived = _derived(module)
    for key, value in vars(module).items():
        if key in _INTERNAL or key in derived:
            continue
        try:
            attrs[key] = _plain(value)
        except TypeError as exc:
            raise TypeError(f"cannot save {where}: attribute {key!r} of {path} is a {exc}, "
                            "not a plain value") from None
    node = {"class": path, "attrs": attrs}
    _members(module, node, prefix, tensors)
    return node


def _computed_node(module: nn.Module, prefix: str, tensors: dict[str, np.ndarray]) -> dict:
    """A parametrized module (``weight_norm``, ``spectral_norm``…) saved as its own class holding the
    tensors the parametrizations compute: the same outputs, plain weights after loading (a warning
    says so). The caller's module is only read."""
    import warnings

    base = type(module).__bases__[0]  # parametrize makes a class per instance on top of the original
    where = prefix.rstrip(".") or "the model"
    if _NAMES.get(base) is None:
        raise ValueError(f"cannot save {where}: it is a parametrized {base.__name__}, which is not a "
                         "torch.nn layer compresslib can store")
    warnings.warn(f"save: {where}'s parametrizations ({', '.join(module.parametrizations)}) are stored as "
                  "the tensors they compute; the loaded layer has plain weights", stacklevel=5)
    attrs = {}
    for key, value in vars(module).items():
        if key in _INTERNAL or key in _derived(module) or key.startswith("__"):
            continue
        attrs[key] = _plain(value)
    node: dict[str, Any] = {"class": _NAMES[base], "attrs": attrs}
    computed = {name: nn.Parameter(getattr(module, name).detach()) for name in module.parametrizations}
    _members(module, node, prefix, tensors, extra=computed, skip=("parametrizations",))
    return node


def _plain_attrs(module: nn.Module) -> dict:
    """The plain-valued attributes of a user module (compression may change them, e.g. a pruned norm's
    ``normalized_shape``); the rest (configs, functions) stays the user's."""
    out = {}
    for key, value in vars(module).items():
        if key in _INTERNAL or key in _derived(module) or key.startswith("__"):
            continue
        try:
            out[key] = _plain(value)
        except TypeError:
            continue
    return out


def _members(module: nn.Module, node: dict, prefix: str, tensors: dict[str, np.ndarray],
             extra: Optional[dict] = None, skip: tuple = ()) -> None:
    """Parameters (plus ``extra`` ones), buffers and children (but ``skip``) of ``module`` into ``node``
    (tensors into ``tensors``)."""
    node.update(params={}, buffers={}, children={}, non_persistent=sorted(module._non_persistent_buffers_set))
    for name, p in {**module._parameters, **(extra or {})}.items():
        node["params"][name] = None if p is None else {"requires_grad": bool(p.requires_grad)}
        if p is not None:
            tensors[prefix + name] = _to_numpy(p)
    for name, b in module._buffers.items():
        node["buffers"][name] = None if b is None else {}
        if b is not None:
            tensors[prefix + name] = _to_numpy(b)
    for name, child in module._modules.items():
        if name not in skip:
            node["children"][name] = None if child is None else _node(child, f"{prefix}{name}.", tensors)


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16: keep the 16 bits as uint16
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def to_spec(model: nn.Module) -> tuple[dict, dict[str, np.ndarray]]:
    """Describe ``model`` as ``(spec, tensors)`` for :func:`compresslib.io.save`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kind = getattr(model, "compresslib_kind", None)
    if kind is not None:  # e.g. int8 models from torch.ao (compresslib.torch.replay)
        from compresslib import registry

        return registry.kind("torch", kind).to_spec(model)
    tensors: dict[str, np.ndarray] = {}
    root = _node(model, "", tensors)
    ties = {k: v for k, v in _tied_names(model).items() if k in tensors and v in tensors}
    for name in ties:  # a tensor shared by several modules is stored once and tied again on load
        del tensors[name]
    dtypes = {k: "bfloat16" for k in _bf16_names(model) if k in tensors}  # not a tie, nor a parametrization's
    spec = {"root": root, "torch_dtypes": dtypes}
    if ties:
        spec["ties"] = ties
    return spec, tensors


def _tied_names(model: nn.Module) -> dict[str, str]:
    """``{name: first name}`` of every parameter or buffer that is the same tensor as an earlier one.

    A language model whose output layer reuses its embedding matrix has one such tie; saving keeps one
    copy and loading ties them again (the same ``nn.Parameter`` in both modules).

    Example:
        >>> emb, head = torch.nn.Embedding(5, 3), torch.nn.Linear(3, 5, bias=False)
        >>> head.weight = emb.weight
        >>> _tied_names(torch.nn.Sequential(emb, head))
        {'1.weight': '0.weight'}
    """
    first: dict[int, str] = {}
    ties = {}
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    for name, t in named:
        if t is None:
            continue
        if id(t) in first and first[id(t)] != name:
            ties[name] = first[id(t)]
        else:
            first.setdefault(id(t), name)
    return ties


def _bf16_names(model: nn.Module) -> dict[str, bool]:
    """Names of the bfloat16 tensors the file holds: parameters and buffers, and for a parametrized layer
    (stored as the tensors its parametrizations compute, see :func:`_computed_node`) those tensors."""
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    for prefix, module in model.named_modules():
        if parametrize.is_parametrized(module):
            named += [(f"{prefix}.{n}" if prefix else n, getattr(module, n)) for n in module.parametrizations]
    return {n: True for n, t in named if t is not None and t.dtype == torch.bfloat16}


# --------------------------------------------------------------------------- load: check, then build
@dataclass
class _Context:
    """What building a module tree needs besides the spec: the tensors and how to look classes up."""

    tensors: Mapping[str, np.ndarray]
    dtypes: dict
    custom_objects: dict = field(default_factory=dict)
    max_depth: int = 100
    used: set = field(default_factory=set)
    classes: dict = field(default_factory=dict)  # id(node) -> class, filled by the check
    template: Optional[nn.Module] = None  # load(path, model=...): the user's instance, for "code" nodes
    targets: dict = field(default_factory=dict)  # id(code node) -> the template's module, found by the check
    ties: dict = field(default_factory=dict)  # tied name -> the name of the tensor it shares
    built: dict = field(default_factory=dict)  # name -> tensor, for the ties (filled while building)


def _name(name: object, what: str) -> str:
    if not isinstance(name, str) or not name or "." in name or name.startswith("__"):
        raise ValueError(f"{what} name {str(name)[:60]!r} is not a valid module member name")
    return name


def _check_attr(key: object, value: Any, cls: type, where: str) -> None:
    if not isinstance(key, str) or not key.isidentifier() or key.startswith("__") or key in _INTERNAL:
        raise ValueError(f"{where}: attribute name {str(key)[:60]!r} is not allowed")
    static = inspect.getattr_static(cls, key, None)
    if isinstance(static, (types.FunctionType, property, classmethod, staticmethod)) or (
            static is not None and hasattr(type(static), "__set__")):
        raise ValueError(f"{where}: attribute {key!r} would replace a method or property of {class_path(cls)}")
    _unplain(value)


def _check_node(node: Any, prefix: str, ctx: _Context, depth: int) -> None:
    """Check one node and its children before anything is constructed; record the class of each node."""
    where = f"module {prefix.rstrip('.') or '(root)'}"
    if depth > ctx.max_depth:
        raise ValueError(f"{where}: modules nested more than {ctx.max_depth} deep")
    if isinstance(node, dict) and "code" in node:
        cls = _check_code_node(node, prefix, ctx, where)
        attrs = {}
    else:
        if not isinstance(node, dict) or set(node) != _NODE_KEYS:
            raise ValueError(f"{where}: a module is described by exactly {sorted(_NODE_KEYS)}")
        cls = lookup_class(node["class"], ctx.custom_objects)
        attrs = node["attrs"]
    params, buffers, children = node["params"], node["buffers"], node["children"]
    if not all(isinstance(x, dict) for x in (attrs, params, buffers, children)):
        raise ValueError(f"{where}: attrs, params, buffers and children must be objects")
    if not isinstance(node["non_persistent"], list) or not set(node["non_persistent"]) <= set(buffers):
        raise ValueError(f"{where}: non_persistent must list some of its buffers")
    members = [*attrs, *params, *buffers, *children]
    if len(set(members)) != len(members):
        raise ValueError(f"{where}: a name is used twice among attributes, parameters, buffers and children")
    for key, value in attrs.items():
        _check_attr(key, value, cls, where)
    for kind, entries in (("parameter", params), ("buffer", buffers)):
        for name, meta in entries.items():
            _name(name, f"{where}: {kind}")
            if meta is None:
                continue
            ok = meta == {} if kind == "buffer" else (
                isinstance(meta, dict) and set(meta) == {"requires_grad"} and isinstance(meta["requires_grad"], bool))
            if not ok:
                raise ValueError(f"{where}: {kind} {name!r} is described by {str(meta)[:60]}")
            if prefix + name in ctx.ties:
                continue
            if prefix + name not in ctx.tensors:
                raise ValueError(f"{where}: {kind} {name!r} has no tensor {prefix + name!r} in the file")
            ctx.used.add(prefix + name)
    ctx.classes[id(node)] = cls
    for name, child in children.items():
        _name(name, f"{where}: child")
        if child is not None:
            _check_node(child, f"{prefix}{name}.", ctx, depth + 1)


def _check_code_node(node: dict, prefix: str, ctx: _Context, where: str) -> type:
    """A module of the user's own class: it must be in the model the caller passed, with that class."""
    if set(node) != _CODE_KEYS or node["code"] is not True or not isinstance(node["class"], str):
        raise ValueError(f"{where}: a user module is described by exactly {sorted(_CODE_KEYS)}")
    shown = node["class"][:120]
    if ctx.template is None:
        raise ValueError(f"{where} is of the user class {shown!r}, whose code the file does not hold: load it onto "
                         "a fresh instance, load(path, model=YourModel(...)), or register the class with "
                         "compresslib.io.register_class before saving")
    target = ctx.template.get_submodule(prefix.rstrip(".")) if prefix else ctx.template
    if class_path(type(target)) != node["class"]:
        raise ValueError(f"{where}: the file has a {shown!r} there, the model given is a {class_path(type(target))!r}")
    for kind, saved, mine in (("parameters", node["params"], target._parameters),
                              ("buffers", node["buffers"], target._buffers),
                              ("children", node["children"], target._modules)):
        if not isinstance(saved, dict) or set(saved) != set(mine):
            raise ValueError(f"{where}: the file's {kind} {sorted(saved)[:8] if isinstance(saved, dict) else saved!r} "
                             f"differ from the model given ({sorted(mine)[:8]}); is it the same architecture?")
    if not isinstance(node["attrs"], dict):
        raise ValueError(f"{where}: attrs must be an object")
    for key, value in node["attrs"].items():
        _check_attr(key, value, type(target), where)
        try:
            current = vars(target)[key]
            _plain(current)
        except (KeyError, TypeError):
            raise ValueError(f"{where}: the file sets attribute {str(key)[:40]!r}, which the model given does not "
                             "hold as a plain value") from None
    ctx.targets[id(node)] = target
    return type(target)


def check_spec(spec: Any, tensors: Mapping[str, np.ndarray], custom_objects: Optional[dict] = None,
               max_depth: int = 100, template: Optional[nn.Module] = None) -> _Context:
    """Check a float model's description against its tensors before anything is built; ``ValueError`` if off.

    Every node's class is looked up (:func:`lookup_class`), every attribute is a plain value that
    replaces no method, every parameter and buffer has its tensor, and every tensor is used.
    """
    if not isinstance(spec, dict) or "root" not in spec or not set(spec) <= {"root", "torch_dtypes", "ties"}:
        raise ValueError("a torch model is described by 'root' (and 'torch_dtypes', 'ties')")
    ties = spec.get("ties", {})
    if not isinstance(ties, dict) or not all(isinstance(k, str) and isinstance(v, str) and k not in tensors
                                             and v in tensors for k, v in ties.items()):
        raise ValueError("ties must map a tensor name missing from the file to one the file holds")
    dtypes = spec.get("torch_dtypes", {})
    if not isinstance(dtypes, dict) or any(v != "bfloat16" for v in dtypes.values()):
        raise ValueError("torch_dtypes must map tensor names to 'bfloat16'")
    ctx = _Context(tensors, dtypes, dict(custom_objects or {}), max_depth)
    ctx.template = template
    ctx.ties = dict(ties)
    _check_node(spec["root"], "", ctx, 0)
    unused = sorted(set(tensors) - ctx.used)
    if unused:
        raise ValueError(f"tensors {unused[:5]} are in the file but no module uses them")
    for name in dtypes:
        if name not in ctx.used or np.asarray(tensors[name]).dtype != np.uint16:
            raise ValueError(f"bfloat16 tensor {name!r} must be a uint16 tensor of the model")
    return ctx


def _tensor(array: np.ndarray, name: str, dtypes: dict) -> torch.Tensor:
    t = torch.from_numpy(np.array(array, copy=True))
    if dtypes.get(name) == "bfloat16":
        t = t.view(torch.bfloat16)
    return t


def _tied_or_new(name: str, ctx: _Context, requires_grad: Optional[bool]) -> torch.Tensor:
    """The tensor named ``name``: the one it is tied to (already built), else a new one from the file
    (a parameter when ``requires_grad`` is not None)."""
    if name in ctx.ties:
        shared = ctx.built.get(ctx.ties[name])
        if shared is None:
            raise ValueError(f"{name!r} is tied to {ctx.ties[name]!r}, which no module before it holds")
        return shared
    t = _tensor(ctx.tensors[name], name, ctx.dtypes)
    if requires_grad is not None:
        t = nn.Parameter(t, requires_grad=requires_grad and t.is_floating_point())
    ctx.built[name] = t
    return t


def _build(node: dict, prefix: str, ctx: _Context) -> nn.Module:
    cls = ctx.classes[id(node)]
    if "code" in node:  # the user's module, from the (copied) instance given; the file sets its tensors
        module = ctx.targets[id(node)]
        for key, value in node["attrs"].items():
            object.__setattr__(module, key, _unplain(value))
        module._parameters.clear()
        module._buffers.clear()
        module._non_persistent_buffers_set.clear()
        module._modules.clear()
    else:
        module = cls.__new__(cls)
        nn.Module.__init__(module)
        for key, value in node["attrs"].items():
            object.__setattr__(module, key, _unplain(value))
    for name, meta in node["params"].items():
        if meta is None:
            module.register_parameter(name, None)
        else:
            module.register_parameter(name, _tied_or_new(prefix + name, ctx, meta["requires_grad"]))
    for name, meta in node["buffers"].items():
        buf = None if meta is None else _tied_or_new(prefix + name, ctx, None)
        module.register_buffer(name, buf, persistent=name not in node["non_persistent"])
    for name, child in node["children"].items():
        module.add_module(name, None if child is None else _build(child, f"{prefix}{name}.", ctx))
    _refresh(module)
    return module


def from_spec(spec: dict, tensors: dict[str, np.ndarray], *, custom_objects: Optional[Mapping[str, type]] = None,
            max_bytes: Optional[int] = None, max_depth: int = 100, model: Optional[nn.Module] = None) -> nn.Module:
    """Inverse of :func:`to_spec`: a new module (on CPU, in eval mode unless saved in train mode).

    The whole description is checked (:func:`check_spec`) before any module is created.
    ``max_bytes`` bounds what an int8 model's recipe may allocate (its float skeleton).
    ``model``: an instance of the saved model's own class, for files that hold modules of
    the user's classes (their code is the user's; the file fills their tensors and the
    compressed layers around them). It is copied, never changed.
    """
    custom = check_custom_objects(custom_objects)
    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (a fresh instance of the saved model's class), "
                        f"got {type(model).__name__}")
    if isinstance(spec, dict) and spec.get("kind") is not None:
        from compresslib import registry

        kind = spec["kind"]
        if not isinstance(kind, str):
            raise ValueError("the model kind must be a string")
        return registry.kind("torch", kind).from_spec(spec, tensors, custom_objects=custom, max_bytes=max_bytes,
                                                   max_depth=max_depth, model=model)
    return build(spec, tensors, custom, max_depth, model)


def build(spec: dict, tensors: Mapping[str, np.ndarray], custom_objects: Optional[dict] = None,
          max_depth: int = 100, model: Optional[nn.Module] = None) -> nn.Module:
    """Check a plain module tree (:func:`check_spec`) and build it; ``model`` supplies user-class modules."""
    import copy

    template = None if model is None else copy.deepcopy(model)
    ctx = check_spec(spec, tensors, custom_objects, max_depth, template)
    return _build(spec["root"], "", ctx)


# --------------------------------------------------------------------------- int8 models (a recipe)
_STATE_TYPES = {"dtype": (), "none": (), "tensor": (), "tuple": ("items",), "qchannel": ("axis", "dtype"),
                "qtensor": ("scale", "zp", "dtype"), "subclass": ("names",)}


def _check_state(key: str, meta: Any, tensors: Mapping, used: set, depth: int = 0) -> None:
    if depth > 8 or not isinstance(meta, dict) or meta.get("type") not in _STATE_TYPES:
        raise ValueError(f"state entry {key!r} is not one compresslib writes")
    kind = meta["type"]
    if set(meta) != {"type", *_STATE_TYPES[kind]}:
        raise ValueError(f"state entry {key!r} of type {kind!r} has keys {sorted(meta)}")
    if kind == "tuple":
        if not isinstance(meta["items"], list):
            raise ValueError(f"state entry {key!r}: items must be a list")
        for i, item in enumerate(meta["items"]):
            _check_state(f"{key}.{i}", item, tensors, used, depth + 1)
        return
    names = {"tensor": [key], "qtensor": [key + "#q"], "qchannel": [key + "#q", key + "#scale", key + "#zp"],
             "subclass": [f"{key}#{n}" for n in meta.get("names", [])] if isinstance(meta.get("names"), list)
             and all(isinstance(n, str) for n in meta["names"]) else None}.get(kind, [])
    if names is None:
        raise ValueError(f"state entry {key!r}: names must be a list of strings")
    if kind == "qtensor" and not (isinstance(meta["scale"], float) and type(meta["zp"]) is int):
        raise ValueError(f"state entry {key!r}: scale must be a float and zp an integer")
    if kind == "qchannel" and type(meta["axis"]) is not int:
        raise ValueError(f"state entry {key!r}: axis must be an integer")
    for name in names:
        if name not in tensors:
            raise ValueError(f"state entry {key!r} has no tensor {name!r} in the file")
        used.add(name)


def check_skeleton(shapes: Any, float_spec: Any, custom_objects: Optional[dict] = None,
                   max_bytes: Optional[int] = None, max_depth: int = 100, template: Optional[nn.Module] = None) -> None:
    """Check an int8 recipe's float skeleton before it is allocated: ``shapes`` (name -> [shape, dtype])
    within ``max_bytes`` in all, and ``float_spec`` a module tree :func:`check_spec` accepts for them."""
    from compresslib.core import packing

    if not isinstance(shapes, dict):
        raise ValueError("the recipe's shapes must be an object")
    total, skeleton = 0, {}
    for name, entry in shapes.items():
        if not (isinstance(entry, list) and len(entry) == 2):
            raise ValueError(f"the recipe's shape of {name!r} must be [shape, dtype]")
        shape = packing.check_shape(entry[0], f"the recipe's shape of {name!r}")
        dtype = packing.check_dtype(entry[1], f"the recipe's dtype of {name!r}")
        total += packing.n_elements(shape) * dtype.itemsize
        if max_bytes is not None and total > max_bytes:
            raise ValueError(f"the recipe's float model would take more than {max_bytes} bytes")
        skeleton[name] = np.empty(0, dtype)
    check_spec(float_spec, skeleton, custom_objects, max_depth, template)


def check_state(state: Any, tensors: Mapping[str, np.ndarray]) -> None:
    """Check an int8 model's stored state entries against the file's tensors (each one used, none missing)."""
    if not isinstance(state, dict):
        raise ValueError("the int8 state must be an object")
    used: set = set()
    for key, meta in state.items():
        _check_state(key, meta, tensors, used)
    unused = sorted(set(tensors) - used)
    if unused:
        raise ValueError(f"tensors {unused[:5]} are in the file but the int8 state does not use them")
