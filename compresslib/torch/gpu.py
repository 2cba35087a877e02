"""Quantization that pays on data-centre GPUs: FP8, int8 and int4 through torchao, 2:4 sparsity.

Handlers for :class:`~compresslib.configs.Float8Dynamic`, :class:`~compresslib.configs.Int8DynamicCUDA`,
:class:`~compresslib.configs.Int4WeightOnlyCUDA` and :class:`~compresslib.configs.Sparse24`. Each
checks, *before any work*, that the model is a ``torch.nn.Module`` on a CUDA GPU that has the
kernel (compute capability), that the package it needs is installed, that the model's float
dtype is one the kernel takes and that at least one Linear layer fits the kernel's shapes;
otherwise it raises a ``ValueError`` naming ``model`` (or an ``ImportError`` naming the package)
with what to do instead. Linear layers that do not fit are left as they are, named in one warning.
The input model is never changed; the result lives on the model's GPU.

Why these four (measured on an H200, 8×Linear(4096) in bf16, compiled): torchao's int8
*weight-only* path ran 0.67× of bf16 at batch 1 and 0.01× at batch 256, and ``torch.ao`` int8
does not run on CUDA at all, so the CPU configs do not pay on a GPU. FP8 and int8 with
dynamic activations use the tensor cores' low-precision matmuls (they pay at large batches),
int4 weight-only halves again the bytes a small batch must read, and 2:4 sparsity halves the
multiply work of an already pruned model exactly. Which one pays for a given model and batch
is measured, not assumed: see :mod:`compresslib.torch.auto`.

Names: each says the number format and scheme as the field says it: ``Float8Dynamic`` is "FP8
dynamic" (vLLM's ``FP8_DYNAMIC``, torchao's ``float8dq``), ``Sparse24`` is "2:4 sparsity" (NVIDIA's
Sparse Tensor Cores). Where compresslib already names the scheme for its CPU kernels
(``Int8Dynamic``: torch.ao x86 int8; ``WeightOnly(bits=4)``: compresslib's packed layers), the CUDA
kernel takes that name plus ``CUDA``, so a reader sees both the scheme and where it runs, and a
recipe of one is never mistaken for the other.

Saving: the result holds torchao / torch sparse tensor subclasses with GPU-specific packing,
so :func:`compresslib.save` refuses it with the recipe to use instead (save the float or
pruned model, quantize again after loading; the conversion takes seconds).

Example:
    >>> import torch, compresslib as cl
    >>> m = torch.nn.Sequential(torch.nn.Linear(64, 64))
    >>> cl.quantize(m, cl.Float8Dynamic())                   # a CPU model: refused before any work
    Traceback (most recent call last):
    ...
    ValueError: model: Float8Dynamic runs on CUDA GPUs only (FP8 tensor-core matmuls), but the model is on cpu; move it with model.to('cuda'). On CPU, Int8Dynamic and Int8Static use torch's x86 int8 kernels
"""
from __future__ import annotations

import copy
import importlib
import warnings
from typing import Any, Callable, Optional

import torch
from torch import nn

from compresslib.configs import Float8Dynamic, Int4WeightOnlyCUDA, Int8DynamicCUDA, QuantConfig, Sparse24
from compresslib.registry import register, register_kind
from compresslib.torch import inputs

KIND = "torch_gpu"

# what each config runs on: (words for the error, least compute capability, package needed, dtypes taken)
_NEEDS: dict[type, tuple[str, tuple[int, int], Optional[str], tuple]] = {
    Float8Dynamic: ("FP8 tensor-core matmuls", (8, 9), "torchao", (torch.bfloat16, torch.float16, torch.float32)),
    Int8DynamicCUDA: ("int8 tensor-core matmuls, torch._int_mm", (8, 0), "torchao",
                      (torch.bfloat16, torch.float16, torch.float32)),
    Int4WeightOnlyCUDA: ("torch's int4 tinygemm kernel", (8, 0), "torchao", (torch.bfloat16,)),
    Sparse24: ("sparse tensor-core matmuls, cuSPARSELt or CUTLASS", (8, 0), None, (torch.bfloat16, torch.float16)),
}
TORCHAO_MIN = (0, 18)


def _name(config: QuantConfig) -> str:
    return type(config).__name__


def check_device(model: Any, config: QuantConfig) -> torch.device:
    """The CUDA device ``model`` is on, after the checks every GPU config shares (type, device, package, GPU).

    Raises ``TypeError`` for a non-module, ``ValueError`` naming ``model`` for a model not on a
    CUDA GPU that has the kernel, ``ImportError`` naming the package when it is missing or too old.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    what, capability, package, _ = _NEEDS[type(config)]
    device = inputs.model_device(model)
    if device.type != "cuda":
        raise ValueError(f"model: {_name(config)} runs on CUDA GPUs only ({what}), but the model is on {device}; "
                         "move it with model.to('cuda'). On CPU, Int8Dynamic and Int8Static use torch's x86 "
                         "int8 kernels")
    if package is not None:
        _check_package(package, config)
    if torch.version.hip is None:  # NVIDIA: compute capability
        have = torch.cuda.get_device_capability(device)
        if tuple(have) < capability:
            raise ValueError(f"model: {_name(config)} needs a GPU of compute capability {capability[0]}.{capability[1]} "
                             f"or newer ({what}); the model is on {torch.cuda.get_device_name(device)} "
                             f"({have[0]}.{have[1]})" + (". Int8DynamicCUDA and Int4WeightOnlyCUDA run on 8.0+"
                                                          if isinstance(config, Float8Dynamic) else ""))
    elif isinstance(config, Float8Dynamic):  # AMD: FP8 from MI300 on
        from torchao.utils import is_MI300, is_MI350

        if not (is_MI300() or is_MI350()):
            raise ValueError(f"model: Float8Dynamic needs an AMD MI300 or newer on ROCm ({what}); "
                             f"the model is on {torch.cuda.get_device_name(device)}")
    return device


def _check_package(package: str, config: QuantConfig) -> None:
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ImportError(f"{_name(config)} needs {package} (pip install 'torchao>=0.18')") from None
    version = tuple(int(p) for p in str(getattr(module, "__version__", "0.0")).split("+")[0].split(".")[:2]
                    if p.isdigit())
    if version < TORCHAO_MIN:
        raise ImportError(f"{_name(config)} needs torchao >= {TORCHAO_MIN[0]}.{TORCHAO_MIN[1]}, found "
                          f"{module.__version__} (pip install -U 'torchao>=0.18')")


def check_dtype(model: nn.Module, config: QuantConfig) -> torch.dtype:
    """The float dtype of ``model``'s Linear weights, if ``config``'s kernel takes it (``ValueError`` otherwise)."""
    dtypes = {m.weight.dtype for m in model.modules() if isinstance(m, nn.Linear)}
    allowed = _NEEDS[type(config)][3]
    if isinstance(config, Float8Dynamic) and config.granularity == "row":
        allowed = (torch.bfloat16,)
    bad = sorted(str(d).removeprefix("torch.") for d in dtypes if d not in allowed)
    if bad:
        names = ", ".join(str(d).removeprefix("torch.") for d in allowed)
        hint = " or granularity='tensor'" if isinstance(config, Float8Dynamic) and config.granularity == "row" else ""
        raise ValueError(f"model: {config!r} takes Linear weights in {names}, the model has {', '.join(bad)}; "
                         f"convert it first (cl.quantize(model, cl.BFloat16()) or model.to(torch.bfloat16)){hint}")
    return next(iter(dtypes)) if dtypes else torch.float32


def _fits(config: QuantConfig) -> Callable[[nn.Linear], Optional[str]]:
    """``why(layer)``: None when the kernel takes this Linear layer, else the reason it stays as it is."""
    if isinstance(config, Float8Dynamic):
        return lambda m: None if m.in_features % 16 == 0 and m.out_features % 16 == 0 else \
            f"sides {m.out_features}×{m.in_features} not multiples of 16"
    if isinstance(config, Int8DynamicCUDA):
        return lambda m: None if m.in_features % 8 == 0 and m.out_features % 8 == 0 else \
            f"sides {m.out_features}×{m.in_features} not multiples of 8"
    if isinstance(config, Int4WeightOnlyCUDA):
        return lambda m: None if m.in_features % config.group_size == 0 else \
            f"fan-in {m.in_features} not a multiple of group_size {config.group_size}"
    return _sparse_fit


def _sparse_fit(m: nn.Linear) -> Optional[str]:
    out_f, in_f = m.weight.shape
    if out_f % 32 or in_f % 64:  # the stricter of the cuSPARSELt (16, 16) and CUTLASS (32, 64) minimums
        return f"sides {out_f}×{in_f} not multiples of 32×64"
    w = m.weight.detach()
    if int((w.reshape(-1, 4) != 0).sum(dim=1).max()) > 2:
        return "not 2:4 sparse (prune it with cl.prune(model, cl.NM(2, 4)) first)"
    return None


def plan(model: nn.Module, config: QuantConfig) -> tuple[list[str], dict[str, str]]:
    """``(converted, skipped)``: names of the Linear layers ``config`` converts, and why the others stay.

    ``ValueError`` naming ``model`` when none fits (nothing would change).
    """
    why = _fits(config)
    converted, skipped = [], {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear) and type(m.weight) in (torch.Tensor, nn.Parameter):
            reason = why(m)
            if reason is None:
                converted.append(name)
            else:
                skipped[name] = reason
    if not converted:
        detail = "; ".join(f"{n}: {r}" for n, r in list(skipped.items())[:5]) or "it has no nn.Linear layer"
        raise ValueError(f"model: {_name(config)} found no Linear layer its kernel takes ({detail})")
    return converted, skipped


def _warn_skipped(config: QuantConfig, skipped: dict[str, str]) -> None:
    if skipped:
        warnings.warn(f"quantize({_name(config)}): Linear layers left as they are: "
                      + ", ".join(f"{n} ({r})" for n, r in skipped.items()), UserWarning, stacklevel=4)


def torchao_config(config: QuantConfig) -> Any:
    """The torchao config object that carries out ``config`` (torchao imported here, not at module import)."""
    from torchao.quantization import (Float8DynamicActivationFloat8WeightConfig, Int4WeightOnlyConfig,
                                      Int8DynamicActivationInt8WeightConfig, PerRow, PerTensor)

    if isinstance(config, Float8Dynamic):
        granularity = PerRow() if config.granularity == "row" else PerTensor()
        return Float8DynamicActivationFloat8WeightConfig(granularity=granularity)
    if isinstance(config, Int8DynamicCUDA):
        return Int8DynamicActivationInt8WeightConfig()
    if isinstance(config, Int4WeightOnlyCUDA):
        from torchao.quantization.quantize_.workflows import Int4PackingFormat

        return Int4WeightOnlyConfig(group_size=config.group_size, int4_packing_format=Int4PackingFormat.TILE_PACKED_TO_4D)
    raise TypeError(f"config: {_name(config)} is not a torchao config")


def convert(model: nn.Module, config: QuantConfig, layers: list[str]) -> nn.Module:
    """A copy of ``model`` with ``layers`` converted by ``config`` (no device checks: the handlers make them)."""
    new = copy.deepcopy(model).eval()
    chosen = set(layers)
    if isinstance(config, Sparse24):
        from torch.sparse import to_sparse_semi_structured

        for name, m in new.named_modules():
            if name in chosen:
                m.weight = nn.Parameter(to_sparse_semi_structured(m.weight.detach().contiguous()), requires_grad=False)
    else:
        from torchao.quantization import quantize_

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Enum subclass.*")
            quantize_(new, torchao_config(config), filter_fn=lambda m, name: name in chosen)
    new.compresslib_kind = KIND
    new.compresslib_recipe = {"config": config.to_dict(), "layers": sorted(chosen)}
    return new


@register("quantize", "torch", Float8Dynamic, Int8DynamicCUDA, Int4WeightOnlyCUDA, Sparse24)
def quantize_gpu(model: nn.Module, config: QuantConfig, *, calibration_data: Any = None) -> nn.Module:
    """A copy of ``model`` with its Linear layers converted for ``config``'s CUDA kernel (checks first).

    ``Float8Dynamic``: FP8 weights, FP8 activations scaled per batch (torchao, sm ≥ 8.9).
    ``Int8DynamicCUDA``: int8 weights per channel, int8 activations per token, ``torch._int_mm`` (torchao).
    ``Int4WeightOnlyCUDA``: int4 weights in groups, bf16 activations, torch's tinygemm kernel (torchao).
    ``Sparse24``: 2:4 sparse weights on the sparse tensor cores (``to_sparse_semi_structured``).
    ``calibration_data`` is not used: every scale is computed from the weights or per batch at run time.
    """
    check_device(model, config)
    check_dtype(model, config)
    layers, skipped = plan(model, config)
    _warn_skipped(config, skipped)
    return convert(model, config, layers)


def _to_spec(model: nn.Module) -> tuple[dict, dict]:
    name = model.compresslib_recipe["config"]["type"]
    raise TypeError(f"cannot save a {name} model: its weights are GPU kernel tensors (torchao / torch.sparse) "
                    "whose packing depends on the GPU. Save the model before this step (cl.save(model, path)) "
                    f"and apply cl.quantize(cl.load(path).to('cuda'), cl.{name}(...)) after loading; "
                    "the conversion takes seconds")


def _from_spec(spec: dict, tensors: dict) -> nn.Module:
    raise ValueError(f"{KIND} models are never written to files; this file is not one compresslib wrote")


register_kind("torch", KIND, _to_spec, _from_spec)

__all__ = ["KIND", "check_device", "check_dtype", "plan", "torchao_config", "convert", "quantize_gpu"]
