"""PyTorch side of ``.clz`` files: a module tree described without pickle.

Every module is stored as its class name, its plain attributes (numbers,
strings, booleans, None and tuples/lists of them), the names and shapes of
its parameters and buffers, and its children. Loading imports classes only
from an allowlist (``torch.nn.*`` and ``compresslib.*``), creates them
without running their constructors, restores the attributes and fills the
tensors from the file. Nothing is unpickled.

Example:
    >>> import torch
    >>> spec, tensors = export(torch.nn.Sequential(torch.nn.Linear(2, 3)))
    >>> sorted(tensors), spec["root"]["children"]["0"]["class"]
    (['0.bias', '0.weight'], 'torch.nn.modules.linear.Linear')
"""
from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import torch
from torch import nn

ALLOWED_PREFIXES = ("torch.nn.", "compresslib.")
_HOOK_DICTS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_state_dict_hooks",
               "_load_state_dict_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs")
_INTERNAL = {"compresslib_kind", "compresslib_recipe", "compresslib_auto", "_parameters", "_buffers", "_modules", "_non_persistent_buffers_set", "_backward_pre_hooks",
             "_state_dict_pre_hooks", "_load_state_dict_post_hooks", "_forward_hooks_always_called",
             "_is_full_backward_hook", "_compiled_call_impl"} | set(_HOOK_DICTS)


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
    raise TypeError(type(value).__name__)


def _unplain(value: Any) -> Any:
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_unplain(v) for v in value["__tuple__"])
    if isinstance(value, dict) and "__dtype__" in value:
        dtype = getattr(torch, value["__dtype__"])
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"not a torch dtype: {value['__dtype__']!r}")
        return dtype
    if isinstance(value, list):
        return [_unplain(v) for v in value]
    return value


def _class_path(module: nn.Module) -> str:
    cls = type(module)
    return f"{cls.__module__}.{cls.__qualname__}"


def _node(module: nn.Module, prefix: str, tensors: dict[str, np.ndarray]) -> dict:
    path = _class_path(module)
    where = prefix.rstrip(".") or "the model"
    if not path.startswith(ALLOWED_PREFIXES):
        raise TypeError(f"cannot save {where}: class {path} is outside torch.nn and compresslib")
    for hooks in _HOOK_DICTS:
        if getattr(module, hooks, None):
            raise ValueError(f"cannot save {where}: it has {hooks} (e.g. torch.nn.utils.prune masks); "
                             "remove them first (compresslib's pruning leaves plain weights)")
    attrs = {}
    for key, value in vars(module).items():
        if key in _INTERNAL:
            continue
        try:
            attrs[key] = _plain(value)
        except TypeError as exc:
            raise TypeError(f"cannot save {where}: attribute {key!r} of {path} is a {exc}, "
                            "not a plain value") from None
    node: dict[str, Any] = {"class": path, "attrs": attrs, "params": {}, "buffers": {}, "children": {},
                            "non_persistent": sorted(module._non_persistent_buffers_set)}
    for name, p in module._parameters.items():
        node["params"][name] = None if p is None else {"requires_grad": bool(p.requires_grad)}
        if p is not None:
            tensors[prefix + name] = _to_numpy(p)
    for name, b in module._buffers.items():
        node["buffers"][name] = None if b is None else {}
        if b is not None:
            tensors[prefix + name] = _to_numpy(b)
    for name, child in module._modules.items():
        node["children"][name] = None if child is None else _node(child, f"{prefix}{name}.", tensors)
    return node


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16: keep the 16 bits as uint16
        return t.view(torch.int16).numpy().view(np.uint16)
    return t.numpy()


def export(model: nn.Module) -> tuple[dict, dict[str, np.ndarray]]:
    """Describe ``model`` as ``(spec, tensors)`` for :func:`compresslib.io.save`."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    kind = getattr(model, "compresslib_kind", None)
    if kind is not None:  # e.g. int8 models from torch.ao (compresslib.torch.replay)
        from compresslib import registry

        return registry.kind("torch", kind).export(model)
    tensors: dict[str, np.ndarray] = {}
    root = _node(model, "", tensors)
    dtypes = {k: "bfloat16" for k, v in _bf16_names(model).items()}
    return {"root": root, "torch_dtypes": dtypes}, tensors


def _bf16_names(model: nn.Module) -> dict[str, bool]:
    named = list(model.named_parameters(remove_duplicate=False)) + list(model.named_buffers(remove_duplicate=False))
    return {n: True for n, t in named if t is not None and t.dtype == torch.bfloat16}


def _resolve(path: str) -> type:
    if not path.startswith(ALLOWED_PREFIXES):
        raise ValueError(f"refusing to load class {path!r}: only torch.nn.* and compresslib.* are allowed")
    module_name, _, qualname = path.rpartition(".")
    while True:  # nested classes: split module path from qualified name
        try:
            obj: Any = importlib.import_module(module_name)
            break
        except ModuleNotFoundError:
            module_name, _, outer = module_name.rpartition(".")
            qualname = f"{outer}.{qualname}"
            if not module_name:
                raise ValueError(f"cannot import class {path!r}") from None
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ValueError(f"{path!r} is not a torch.nn.Module class")
    return obj


def _tensor(array: np.ndarray, name: str, dtypes: dict) -> torch.Tensor:
    t = torch.from_numpy(np.array(array, copy=True))
    if dtypes.get(name) == "bfloat16":
        t = t.view(torch.bfloat16)
    return t


def _build(node: dict, prefix: str, tensors: dict[str, np.ndarray], dtypes: dict) -> nn.Module:
    cls = _resolve(node["class"])
    module = cls.__new__(cls)
    nn.Module.__init__(module)
    for key, value in node["attrs"].items():
        object.__setattr__(module, key, _unplain(value))
    for name, meta in node["params"].items():
        if meta is None:
            module.register_parameter(name, None)
        else:
            t = _tensor(tensors[prefix + name], prefix + name, dtypes)
            module.register_parameter(name, nn.Parameter(t, requires_grad=meta["requires_grad"] and t.is_floating_point()))
    for name, meta in node["buffers"].items():
        buf = None if meta is None else _tensor(tensors[prefix + name], prefix + name, dtypes)
        module.register_buffer(name, buf, persistent=name not in node["non_persistent"])
    for name, child in node["children"].items():
        module.add_module(name, None if child is None else _build(child, f"{prefix}{name}.", tensors, dtypes))
    return module


def rebuild(spec: dict, tensors: dict[str, np.ndarray]) -> nn.Module:
    """Inverse of :func:`export`: a new module (on CPU, in eval mode unless saved in train mode)."""
    if spec.get("kind") is not None:
        from compresslib import registry

        return registry.kind("torch", spec["kind"]).rebuild(spec, tensors)
    return _build(spec["root"], "", tensors, spec.get("torch_dtypes", {}))
