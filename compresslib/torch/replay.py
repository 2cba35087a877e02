"""Saving models that torch.ao or torchao built: the recipe, replayed on load.

An int8 model from ``torch.ao`` holds packed C++ objects, and a torchao model
holds tensor subclasses; neither can be described as a plain module tree. So
such a model carries its *recipe* — the config (``Config.to_dict()``), the
float architecture it was made from (no float weights), and the form of the
example input — and the file stores the recipe plus the quantized state (int8
arrays, scales, zero points). Loading rebuilds the float skeleton, runs the
config's registered handler on it again (with zero calibration data: the
calibrated ranges come from the file) and loads the state.

Registered as the ``torch_quantized`` model kind (:func:`compresslib.registry.register_kind`).

Example:
    >>> import torch, compresslib as cl
    >>> q = cl.quantize(torch.nn.Sequential(torch.nn.Linear(4, 2)), cl.Int8Dynamic())
    >>> q.compresslib_kind, q.compresslib_recipe["config"]["type"]
    ('torch_quantized', 'Int8Dynamic')
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from compresslib.configs import QAT, Config, Int8Dynamic, Int8Static, WeightOnly
from compresslib.registry import handler, register_kind

KIND = "torch_quantized"
# files written before configs had to_dict() named the mode instead
_OLD_MODES = {"dynamic": Int8Dynamic, "static": Int8Static, "torchao_int8_weight_only": WeightOnly, "qat": QAT}


def attach(q: nn.Module, float_model: nn.Module, config: Config, example: Any) -> nn.Module:
    """Give ``q`` (made from ``float_model`` by ``config``) the recipe :func:`export` needs; return ``q``.

    Describing the float architecture never fails the quantization itself: a model
    that cannot be described keeps the reason, and only saving it reports it.
    """
    from compresslib.torch import inputs
    from compresslib.torch import io as tio

    recipe: dict[str, Any] = {"config": config.to_dict(), "float_spec": None, "shapes": None,
                              "example": None if example is None else inputs.signature(example)}
    try:
        spec, tensors = tio.export(float_model)
    except (TypeError, ValueError) as exc:
        recipe["float_error"] = str(exc)
    else:
        recipe["float_spec"] = spec
        recipe["shapes"] = {k: [list(v.shape), str(v.dtype)] for k, v in tensors.items()}
    q.compresslib_kind = KIND
    q.compresslib_recipe = recipe
    return q


def carry(source: nn.Module, target: nn.Module) -> nn.Module:
    """Copy ``source``'s recipe to ``target`` (e.g. from a QAT model to its converted int8 model)."""
    if hasattr(source, "compresslib_recipe"):
        target.compresslib_kind = KIND
        target.compresslib_recipe = source.compresslib_recipe
    return target


def export(model: nn.Module) -> tuple[dict, dict[str, np.ndarray]]:
    """``(spec, tensors)`` of a model carrying a recipe: the recipe plus its quantized state."""
    recipe = model.compresslib_recipe
    if recipe.get("float_spec") is None:
        raise TypeError(f"cannot save this quantized model: its float architecture could not be described "
                        f"({recipe.get('float_error', 'unknown reason')})")
    tensors: dict[str, np.ndarray] = {}

    def put(key: str, value: Any) -> Any:
        if isinstance(value, torch.dtype):
            return {"type": "dtype"}
        if value is None:
            return {"type": "none"}
        if isinstance(value, (tuple, list)):
            return {"type": "tuple", "items": [put(f"{key}.{i}", v) for i, v in enumerate(value)]}
        if isinstance(value, torch.Tensor) and type(value) not in (torch.Tensor, nn.Parameter) \
                and hasattr(value, "__tensor_flatten__"):  # torchao tensor subclass: its inner tensors
            names, _ = value.__tensor_flatten__()
            for n in names:
                tensors[f"{key}#{n}"] = getattr(value, n).detach().cpu().numpy()
            return {"type": "subclass", "names": list(names)}
        if isinstance(value, torch.Tensor) and value.is_quantized:
            tensors[key + "#q"] = value.int_repr().cpu().numpy()
            if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                tensors[key + "#scale"] = value.q_per_channel_scales().cpu().numpy()
                tensors[key + "#zp"] = value.q_per_channel_zero_points().cpu().numpy()
                return {"type": "qchannel", "axis": int(value.q_per_channel_axis()), "dtype": str(value.dtype)}
            return {"type": "qtensor", "scale": float(value.q_scale()), "zp": int(value.q_zero_point()),
                    "dtype": str(value.dtype)}
        if isinstance(value, torch.Tensor):
            tensors[key] = value.detach().cpu().numpy()
            return {"type": "tensor"}
        raise TypeError(f"cannot save state entry {key!r} of type {type(value).__name__}")

    state = {key: put(key, value) for key, value in model.state_dict().items()}
    return {"kind": KIND, "recipe": recipe, "state": state}, tensors


def _config_of(recipe: dict) -> Config:
    if "mode" in recipe:  # format of files written before Config.to_dict()
        mode = recipe["mode"]
        if mode not in _OLD_MODES:
            raise ValueError(f"unknown quantized model mode {mode!r} in file")
        fields = dict(recipe.get("config") or {})
        if mode == "torchao_int8_weight_only":
            fields = {"bits": 8}
        return _OLD_MODES[mode](**fields)
    return Config.from_dict(recipe.get("config"))


def _example_of(recipe: dict) -> Optional[Any]:
    from compresslib.torch import inputs

    if recipe.get("example") is not None:
        return inputs.zeros(recipe["example"])
    if recipe.get("example_shape") is not None:  # older files
        return torch.zeros([int(d) for d in recipe["example_shape"]])
    return None


def replay(skeleton: nn.Module, config: Config, example: Any) -> nn.Module:
    """Run ``config``'s handler on a float ``skeleton`` as :func:`compresslib.quantize`/``prepare_qat`` did."""
    from compresslib.torch import inputs
    from compresslib.torch.quantization import convert

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if config.verb == "prepare_qat":
            prepared = handler("prepare_qat", "torch", config)(skeleton, config, example_input=example)
            with torch.no_grad():
                inputs.call(prepared, example)
            return convert(prepared)
        return handler("quantize", "torch", config)(skeleton, config, calibration_data=example)


def rebuild(spec: dict, tensors: dict[str, np.ndarray]) -> nn.Module:
    """Inverse of :func:`export`: rebuild the float skeleton, replay the recipe, load the state.

    Like every model :func:`compresslib.load` returns, the result is on CPU, whatever
    device the saved model was on; move a torchao weight-only model back with ``.to("cuda")``.
    """
    from compresslib.torch import io as tio

    recipe = spec["recipe"]
    zeros = {k: np.zeros(shape, dtype=np.dtype(dt)) for k, (shape, dt) in recipe["shapes"].items()}
    skeleton = tio.rebuild(recipe["float_spec"], zeros).eval()
    q = replay(skeleton, _config_of(recipe), _example_of(recipe))
    fresh = q.state_dict()

    def get(key: str, meta: dict) -> Any:
        kind = meta["type"]
        if kind == "dtype":
            return fresh[key] if key in fresh else torch.qint8
        if kind == "none":
            return None
        if kind == "tuple":
            return tuple(get(f"{key}.{i}", m) for i, m in enumerate(meta["items"]))
        if kind == "qchannel":
            return torch._make_per_channel_quantized_tensor(
                torch.from_numpy(tensors[key + "#q"]), torch.from_numpy(tensors[key + "#scale"]),
                torch.from_numpy(tensors[key + "#zp"]), meta["axis"])
        if kind == "qtensor":
            return torch._make_per_tensor_quantized_tensor(torch.from_numpy(tensors[key + "#q"]), meta["scale"], meta["zp"])
        return torch.from_numpy(np.array(tensors[key], copy=True))

    subclass = {k: m for k, m in spec["state"].items() if m["type"] == "subclass"}
    with torch.no_grad():
        for key, meta in subclass.items():  # torchao tensors: fill their inner tensors in place
            target = fresh[key]
            for n in meta["names"]:
                getattr(target, n).copy_(torch.from_numpy(np.array(tensors[f"{key}#{n}"], copy=True)))
    state = OrderedDict((k, get(k, m)) for k, m in spec["state"].items() if k not in subclass)
    state._metadata = getattr(fresh, "_metadata", None)  # module versions decide the state layout
    missing, unexpected = q.load_state_dict(state, strict=False)
    if set(missing) != set(subclass) or unexpected:
        raise ValueError(f"file does not match the rebuilt model: missing {missing}, unexpected {unexpected}")
    q.compresslib_kind = KIND
    q.compresslib_recipe = recipe
    return q


register_kind("torch", KIND, export, rebuild)

__all__ = ["KIND", "attach", "carry", "export", "rebuild", "replay"]
