"""Saving models that torch.ao or torchao built: the recipe, replayed on load.

An int8 model from ``torch.ao`` holds packed C++ objects, and a torchao model
holds tensor subclasses; neither can be described as a plain module tree. So
such a model carries its *recipe* — the config (``Config.to_dict()``), the
float architecture it was made from (no float weights), and the form of the
example input — and the file stores the recipe plus the quantized state (int8
arrays, scales, zero points). Loading rebuilds the float skeleton, runs the
config's registered handler on it again (with zero calibration data: the
calibrated ranges come from the file) and loads the state.

Registered as the ``torch_quantized`` model kind (:func:`compresslib.registry.register_kind`) by
:mod:`compresslib.torch.quantization`, which makes the models and passes QAT's ``convert`` in.

Example:
    >>> import torch, compresslib as cl
    >>> q = cl.quantize(torch.nn.Sequential(torch.nn.Linear(4, 2)), cl.Int8Dynamic())
    >>> q.compresslib_kind, q.compresslib_recipe["config"]["type"]
    ('torch_quantized', 'Int8Dynamic')
"""
from __future__ import annotations

import warnings
from collections import OrderedDict
from dataclasses import replace
from typing import Any, Callable, Optional

import numpy as np
import torch
from torch import nn

from compresslib.configs import QAT, Config, Int8Static
from compresslib.registry import handler

KIND = "torch_quantized"


def attach(q: nn.Module, float_model: nn.Module, config: Config, example: Any) -> nn.Module:
    """Give ``q`` (made from ``float_model`` by ``config``) the recipe :func:`to_spec` needs; return ``q``.

    Describing the float architecture never fails the quantization itself: a model
    that cannot be described keeps the reason, and only saving it reports it.
    """
    from compresslib.torch import inputs
    from compresslib.torch import io as tio

    recipe: dict[str, Any] = {"config": config.to_dict(), "float_spec": None, "shapes": None,
                              "example": None if example is None else inputs.signature(example)}
    try:
        spec, tensors = tio.to_spec(float_model)
        parametrized = _parametrizations(float_model)
    except (TypeError, ValueError) as exc:
        recipe["float_error"] = str(exc)
    else:
        if parametrized:
            recipe["parametrized"] = parametrized
        recipe["float_spec"] = spec
        recipe["shapes"] = {k: [list(v.shape), str(v.dtype)] for k, v in tensors.items()}
    q.compresslib_kind = KIND
    q.compresslib_recipe = recipe
    # non-persistent buffers (e.g. position ids) are not in any state_dict: the file keeps their values
    persistent = set(float_model.state_dict())
    q.compresslib_constants = {n: b.detach().cpu().clone() for n, b in float_model.named_buffers()
                               if n not in persistent}
    return q


def _parametrizations(float_model: nn.Module) -> list:
    """``[[layer, tensor, "weight_norm", dim], ...]``: the parametrizations of ``float_model``, which its stored
    architecture holds as the weights they compute (plain layers). Loading puts them back before replaying
    the recipe, so it quantizes the same model (a parametrized layer is traced through its parametrization,
    or left float). Only ``weight_norm`` is known; any other is refused naming the layer.

    Example:
        >>> conv = torch.nn.utils.parametrizations.weight_norm(torch.nn.Conv1d(2, 3, 3), dim=2)
        >>> _parametrizations(torch.nn.Sequential(conv))
        [['0', 'weight', 'weight_norm', 2]]
    """
    from torch.nn.utils import parametrize
    from torch.nn.utils.parametrizations import _WeightNorm

    out = []
    for name, module in float_model.named_modules():
        if not parametrize.is_parametrized(module):
            continue
        for tensor, plist in module.parametrizations.items():
            if len(plist) != 1 or type(plist[0]) is not _WeightNorm:
                kinds = ", ".join(type(p).__name__ for p in plist)
                raise ValueError(f"{name or 'the model'} ({tensor}: {kinds}) carries a parametrization an int8 "
                                 "recipe cannot replay (weight_norm only); remove it before quantizing, "
                                 f"torch.nn.utils.parametrize.remove_parametrizations(layer, {tensor!r}) "
                                 "(same outputs)")
            out.append([name, tensor, "weight_norm", int(plist[0].dim)])
    return out


def _check_parametrized(parametrized: Any) -> list:
    """The recipe's ``parametrized`` entries, checked for their form before anything is allocated."""
    if not isinstance(parametrized, list):
        raise ValueError("the recipe's parametrized must be a list")
    for entry in parametrized:
        if not (isinstance(entry, list) and len(entry) == 4 and isinstance(entry[0], str) and
                isinstance(entry[1], str) and entry[2] == "weight_norm" and type(entry[3]) is int):
            raise ValueError(f"the recipe's parametrized entry {str(entry)[:60]} is not [layer, tensor, "
                             "'weight_norm', dim]")
    return parametrized


def _reparametrize(skeleton: nn.Module, parametrized: Any) -> None:
    """Put the recipe's ``weight_norm`` parametrizations (:func:`_parametrizations`) back on the skeleton."""
    from torch.nn.utils.parametrizations import weight_norm

    for layer, tensor, _, dim in _check_parametrized(parametrized):
        try:
            module = skeleton.get_submodule(layer)
        except AttributeError:
            raise ValueError(f"the recipe's parametrized layer {layer[:60]!r} is not in its model") from None
        weight = module._parameters.get(tensor)
        if weight is None or not -weight.dim() <= dim < weight.dim():
            raise ValueError(f"the recipe's parametrized layer {layer[:60]!r} has no parameter {tensor[:20]!r} "
                             f"with a dimension {dim}")
        weight_norm(module, tensor, dim)


def carry(source: nn.Module, target: nn.Module) -> nn.Module:
    """Copy ``source``'s recipe to ``target`` (e.g. from a QAT model to its converted int8 model)."""
    if hasattr(source, "compresslib_recipe"):
        target.compresslib_kind = KIND
        target.compresslib_recipe = source.compresslib_recipe
        target.compresslib_constants = getattr(source, "compresslib_constants", {})
    return target


def to_spec(model: nn.Module) -> tuple[dict, dict[str, np.ndarray]]:
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
    spec = {"kind": KIND, "recipe": recipe, "state": state}
    constants = getattr(model, "compresslib_constants", {})
    if constants:
        spec["constants"] = sorted(constants)
        for name, value in constants.items():
            tensors[f"{name}#const"] = value.numpy()
    if recipe.get("path") == "pt2e":
        spec["literals"] = [list(args) for _, args in _qparam_nodes(model)]
    return spec, tensors


_PER_TENSOR_OPS = ("quantize_per_tensor", "dequantize_per_tensor")


def _qparam_nodes(model: nn.Module) -> list:
    """``[(node, (scale, zero_point))]`` of a PT2E model's per-tensor (de)quantize calls, in graph order:
    their scales are literals in the graph, not tensors in its state."""
    graph = getattr(model, "graph", None)
    out = []
    for node in (graph.nodes if graph is not None else []):
        if node.op == "call_function" and any(op in str(node.target) for op in _PER_TENSOR_OPS) \
                and isinstance(node.args[1], float) and isinstance(node.args[2], int):
            out.append((node, (float(node.args[1]), int(node.args[2]))))
    return out


def _example_of(recipe: dict) -> Optional[Any]:
    from compresslib.torch import inputs

    if recipe.get("example") is not None:
        return inputs.zeros(recipe["example"])
    return None


def _stand_ins(shapes: dict, constants: list, tensors: dict) -> dict[str, np.ndarray]:
    """Values for the float skeleton the recipe is replayed on: the file's constants, and for every other
    tensor small deterministic numbers (not zeros: an all-zero weight gives fused conv-BN fake-quantizers of
    QAT a zero range). The file's quantized state replaces them afterwards."""
    rng = np.random.default_rng(0)
    out = {}
    for name, (shape, dtype) in shapes.items():
        dt = np.dtype(dtype)
        if name in constants:
            out[name] = np.array(tensors[f"{name}#const"], copy=True)
        elif dt.kind == "f" and not name.endswith("running_var"):
            out[name] = (0.02 * rng.standard_normal(shape)).astype(dt)
        else:
            out[name] = (np.ones if name.endswith("running_var") else np.zeros)(shape, dtype=dt)
    return out


def replay(skeleton: nn.Module, config: Config, example: Any, convert: Callable[[nn.Module], nn.Module]) -> nn.Module:
    """Run ``config``'s handler on a float ``skeleton`` as :func:`compresslib.quantize`/``prepare_qat`` did
    (``convert``: QAT's, :func:`compresslib.torch.quantization.convert`, which imports this module)."""
    from compresslib.torch import inputs

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if config.verb == "prepare_qat":
            prepared = handler("prepare_qat", "torch", config)(skeleton, config, example_input=example)
            with torch.no_grad():
                inputs.call(prepared, example)
            return convert(prepared)
        if isinstance(config, Int8Static) and config.bias_correction:
            # the file holds the corrected biases: do not correct again on the zero example
            q = handler("quantize", "torch", config)(skeleton, replace(config, bias_correction=False),
                                                     calibration_data=example)
            q.compresslib_recipe["config"] = config.to_dict()
            return q
        return handler("quantize", "torch", config)(skeleton, config, calibration_data=example)


MAX_EXAMPLE_ELEMENTS = 2 ** 22  # the example input a static/QAT recipe is re-run on
_NEW_RECIPE = {"config", "float_spec", "shapes", "example"}


def check(spec: Any, tensors: dict, custom_objects: Optional[dict], max_bytes: Optional[int], max_depth: int,
          model: Optional[nn.Module]) -> tuple[Config, Any]:
    """Check a saved recipe and state before anything is allocated; return the config and the example."""
    from compresslib.torch import inputs
    from compresslib.torch import io as tio

    if not isinstance(spec, dict) or not {"kind", "recipe", "state"} <= set(spec) <= {
            "kind", "recipe", "state", "literals", "constants"}:
        raise ValueError("an int8 torch model is described by 'kind', 'recipe', 'state' (and 'literals', "
                         "'constants')")
    recipe = spec["recipe"]
    if not isinstance(recipe, dict):
        raise ValueError("the recipe must be an object")
    keys = set(recipe)
    if not _NEW_RECIPE <= keys <= _NEW_RECIPE | {"path", "float_error", "float_output", "bias_correction",
                                                 "parametrized"}:
        raise ValueError(f"the recipe has keys {sorted(keys)[:8]}")
    kept = recipe.get("float_output", [])
    if not isinstance(kept, list) or not all(isinstance(k, str) for k in kept):
        raise ValueError("the recipe's float_output must be a list of layer names")
    if "bias_correction" in recipe:
        from compresslib.torch.bias_correction import check_note
        check_note(recipe["bias_correction"])
    if recipe.get("path", "fx") not in ("fx", "pt2e"):
        raise ValueError(f"unknown quantization path {str(recipe.get('path'))[:20]!r}")
    _check_parametrized(recipe.get("parametrized", []))
    config = Config.from_dict(recipe["config"])
    if config.verb not in ("quantize", "prepare_qat"):
        raise ValueError(f"the recipe's config {type(config).__name__} is not a quantization")
    example = _example_of(recipe)
    if example is None and isinstance(config, (Int8Static, QAT)):
        raise ValueError(f"the recipe of a {type(config).__name__} model needs an example input")
    if example is not None and sum(int(t.numel()) for t in inputs.flatten(example)) > MAX_EXAMPLE_ELEMENTS:
        raise ValueError(f"the recipe's example input holds more than {MAX_EXAMPLE_ELEMENTS} elements")
    if recipe["float_spec"] is None:
        raise ValueError("the recipe has no float architecture")
    tio.check_skeleton(recipe["shapes"], recipe["float_spec"], custom_objects, max_bytes, max_depth, model)
    constants = spec.get("constants", [])
    if not isinstance(constants, list) or not all(isinstance(n, str) and n in recipe["shapes"] and f"{n}#const" in tensors
                                                  for n in constants):
        raise ValueError("constants must name buffers of the recipe's float model stored in the file")
    for n in constants:
        shape, dtype = recipe["shapes"][n]
        value = tensors[f"{n}#const"]
        if list(value.shape) != list(shape) or value.dtype != np.dtype(dtype):
            raise ValueError(f"constant {n!r} has shape {value.shape} {value.dtype}, the recipe says {shape} {dtype}")
    tio.check_state(spec["state"], {k: v for k, v in tensors.items() if not k.endswith("#const")})
    literals = spec.get("literals", [])
    if not isinstance(literals, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], float) and type(p[1]) is int for p in literals):
        raise ValueError("literals must be a list of [scale, zero_point] pairs")
    return config, example


def _check_path(recipe: dict, q: nn.Module) -> None:
    """``ValueError`` when the replay took another capture path (torch.fx or torch.export + PT2E) than the
    saved model: their states differ (FX fuses BatchNorm into the convolutions, PT2E keeps it), so the file
    cannot fill the replayed model; say so rather than list the state entries that do not match."""
    saved, replayed = recipe.get("path", "fx"), getattr(q, "compresslib_recipe", {}).get("path", "fx")
    if saved != replayed:
        raise ValueError(f"file: the model was quantized through the {saved} path, and replaying its recipe on the "
                         f"model given took the {replayed} path (torch.fx {'could' if replayed == 'fx' else 'could not'}"
                         " trace it): load it onto an instance of the saved model's class, with the same torch")


def from_spec(spec: dict, tensors: dict[str, np.ndarray], *, custom_objects: Optional[dict] = None,
            max_bytes: Optional[int] = None, max_depth: int = 100, model: Optional[nn.Module] = None,
            convert: Optional[Callable[[nn.Module], nn.Module]] = None) -> nn.Module:
    """Inverse of :func:`to_spec`: check everything, rebuild the float skeleton, replay the recipe, load the state.

    ``convert``: QAT's convert (:mod:`compresslib.torch.quantization` registers this function
    as the ``torch_quantized`` kind with it bound).

    ``model``: an instance of the user's model class, for a skeleton holding user-class modules
    (see :func:`compresslib.torch.io.from_spec`). Like every model :func:`compresslib.load`
    returns, the result is on CPU, whatever device the saved model was on.
    """
    from compresslib.torch import io as tio

    config, example = check(spec, tensors, custom_objects, max_bytes, max_depth, model)
    recipe = spec["recipe"]
    skeleton = tio.build(recipe["float_spec"], _stand_ins(recipe["shapes"], spec.get("constants", []), tensors),
                         custom_objects, max_depth, model).eval()
    _reparametrize(skeleton, recipe.get("parametrized", []))
    if convert is None:
        raise TypeError("from_spec needs convert= (QAT's convert) to replay a recipe")
    q = replay(skeleton, config, example, convert)
    _check_path(recipe, q)
    if spec.get("literals"):
        nodes = _qparam_nodes(q)
        if len(nodes) != len(spec["literals"]):
            raise ValueError(f"the file has {len(spec['literals'])} activation scales, the replayed model "
                             f"{len(nodes)}: it was saved by another version of torch or of the model")
        for (node, _), (scale, zp) in zip(nodes, spec["literals"]):
            node.args = (node.args[0], scale, zp) + tuple(node.args[3:])
        q.recompile()
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
            if key not in fresh:
                raise ValueError(f"state entry {key!r} is not in the replayed model")
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
    q.compresslib_constants = {n: torch.from_numpy(np.array(tensors[f"{n}#const"], copy=True))
                               for n in spec.get("constants", [])}
    return q


__all__ = ["KIND", "attach", "carry", "to_spec", "from_spec", "replay"]
