"""Inputs and outputs of PyTorch models in the shapes users have them.

An **example** is one call's input: a tensor (or NumPy array), a tuple of
positional arguments, or a dict of keyword arguments (a tokenizer's output).
**Calibration data** is many examples: one example whose tensors share a leading
batch dimension (sliced into batches here), or any iterable of examples (a list,
a generator, a ``DataLoader``). A labelled batch ``(x, y)`` from a DataLoader is
read as ``x`` when ``forward`` takes one argument.

Outputs are read the same way whatever their type: a tensor, a tuple or list, a
dict (Hugging Face's ``ModelOutput`` is one), a dataclass or a named tuple;
:func:`flatten` lists their tensors in order and :func:`logits` takes the first.

Example:
    >>> import torch
    >>> args, kwargs = to_call({"input_ids": torch.zeros(2, 5, dtype=torch.long)})
    >>> args, sorted(kwargs)
    ((), ['input_ids'])
    >>> [tuple(t.shape) for t in flatten({"logits": torch.zeros(2, 3), "extra": (torch.zeros(1),)})]
    [(2, 3), (1,)]
    >>> [tuple(b.shape) for b in iter_batches(torch.zeros(10, 4), 4)]
    [(4, 4), (4, 4), (2, 4)]
"""
from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterable, Mapping
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch import nn

Example = Any  # torch.Tensor | np.ndarray | tuple | list | dict


def _tensor(value: Any, device: Optional[torch.device], float_dtype: Optional[torch.dtype]) -> Any:
    if isinstance(value, Mapping):  # nested structures (a dict argument) are converted all the way down
        return {k: _tensor(v, device, float_dtype) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(_tensor(v, device, float_dtype) for v in value)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError("inputs must be numeric arrays, got an object array")
        value = torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, torch.Tensor):
        if float_dtype is not None and value.is_floating_point() and value.dtype != float_dtype:
            value = value.to(float_dtype)
        if device is not None and value.device != device:
            value = value.to(device)
    return value


def whole_dict_argument(model: nn.Module, example: Example) -> bool:
    """True when ``example`` is a dict that ``model.forward`` takes whole as its one required argument instead of
    as keyword arguments: the dict names none of its parameters (sentence-transformers' ``forward(input: dict)``
    fed a tokenizer's features).

    Example:
        >>> class Features(nn.Module):
        ...     def forward(self, features, **kwargs):
        ...         return features["input_ids"]
        >>> whole_dict_argument(Features(), {"input_ids": torch.zeros(1, 3)})
        True
    """
    if not isinstance(example, Mapping):
        return False
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return False
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    named = {p.name for p in params if p.kind is not p.VAR_KEYWORD}
    return len(required) == 1 and not set(map(str, example)) & named


def to_call(example: Example, device: Optional[torch.device] = None,
            float_dtype: Optional[torch.dtype] = None, model: Optional[nn.Module] = None) -> tuple[tuple, dict]:
    """``(args, kwargs)`` to call a model with: arrays become tensors on ``device``; floats take ``float_dtype``.

    With ``model``, a dict its ``forward`` takes whole (:func:`whole_dict_argument`) is its one positional argument.
    """
    if model is not None and whole_dict_argument(model, example):
        return (_tensor(dict(example), device, float_dtype),), {}
    if isinstance(example, Mapping):
        return (), {str(k): _tensor(v, device, float_dtype) for k, v in example.items()}
    if isinstance(example, (tuple, list)):
        return tuple(_tensor(v, device, float_dtype) for v in example), {}
    if isinstance(example, (torch.Tensor, np.ndarray)):
        return (_tensor(example, device, float_dtype),), {}
    raise TypeError("an input must be a tensor or array, a tuple of them (positional arguments) or a dict "
                    f"(keyword arguments), got {type(example).__name__}")


def float_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of the model's first floating-point parameter (float32 if it has none)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter or buffer (CPU if it has none)."""
    for t in list(model.parameters()) + list(model.buffers()):
        return t.device
    return torch.device("cpu")


def call(model: nn.Module, example: Example) -> Any:
    """``model(*args, **kwargs)`` for one example, its tensors moved to the model's device and float dtype."""
    args, kwargs = to_call(example, model_device(model), float_dtype(model), model)
    return model(*args, **kwargs)


def call_hooked(model: nn.Module, example: Example, hooks: Iterable[tuple[nn.Module, Any]]) -> Any:
    """``model``'s output for ``example`` under ``no_grad``, with forward hooks ``(module, hook)`` in place for
    this one call (removed afterwards, also when the call fails).

    Example:
        >>> lin, seen = torch.nn.Linear(2, 3), []
        >>> out = call_hooked(lin, torch.zeros(1, 2), [(lin, lambda m, a, o: seen.append(tuple(o.shape)))])
        >>> seen, len(lin._forward_hooks)
        ([(1, 3)], 0)
    """
    handles = [m.register_forward_hook(h) for m, h in hooks]
    try:
        with torch.no_grad():
            return call(model, example)
    finally:
        for h in handles:
            h.remove()


def _leaves(example: Example) -> list:
    if isinstance(example, Mapping):
        return [leaf for v in example.values() for leaf in _leaves(v)]
    if isinstance(example, (tuple, list)):
        return [leaf for v in example for leaf in _leaves(v)]
    return [example]


def leading_size(example: Example) -> int:
    """The leading dimension shared by the example's tensors (``ValueError`` if they disagree)."""
    sizes = {int(v.shape[0]) for v in _leaves(example) if isinstance(v, (torch.Tensor, np.ndarray)) and v.ndim}
    if len(sizes) != 1:
        raise ValueError(f"the input's tensors must share one batch dimension, got leading sizes {sorted(sizes)}")
    return sizes.pop()


def take(example: Example, start: int, stop: int) -> Example:
    """Rows ``start:stop`` of every tensor of the example (same structure)."""
    if isinstance(example, Mapping):
        return {k: take(v, start, stop) for k, v in example.items()}
    if isinstance(example, (tuple, list)):
        return tuple(take(v, start, stop) for v in example)
    if isinstance(example, (torch.Tensor, np.ndarray)) and example.ndim:
        return example[start:stop]
    return example


def repeat(example: Example, times: int) -> Example:
    """The example with every tensor repeated ``times`` along the batch dimension."""
    if isinstance(example, Mapping):
        return {k: repeat(v, times) for k, v in example.items()}
    if isinstance(example, (tuple, list)):
        return tuple(repeat(v, times) for v in example)
    if isinstance(example, np.ndarray):
        example = torch.from_numpy(example)
    if isinstance(example, torch.Tensor) and example.dim() > 0:
        return example.repeat(times, *([1] * (example.dim() - 1)))
    return example


def describe(example: Example) -> str:
    """A short description for error messages, e.g. ``tensor (1, 3, 32, 32)`` or ``dict(input_ids: (2, 8))``."""
    def one(v: Any) -> str:
        if isinstance(v, (Mapping, tuple, list)):
            return describe(v)
        return str(tuple(v.shape)) if hasattr(v, "shape") else type(v).__name__
    if isinstance(example, Mapping):
        return "dict(" + ", ".join(f"{k}: {one(v)}" for k, v in example.items()) + ")"
    if isinstance(example, (tuple, list)):
        return "tuple(" + ", ".join(one(v) for v in example) + ")"
    return f"tensor {one(example)}"


def is_batched_example(data: Any) -> bool:
    """True for one example given as tensors/arrays: a tensor, or a dict or non-empty tuple of them."""
    if isinstance(data, (torch.Tensor, np.ndarray)):
        return True
    if isinstance(data, Mapping):
        return bool(data) and all(is_batched_example(v) for v in data.values())
    if isinstance(data, tuple):
        return bool(data) and all(is_batched_example(v) for v in data)
    return False


def positional_arity(model: nn.Module) -> Optional[int]:
    """How many positional arguments ``forward`` requires (None when it takes ``*args``)."""
    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    return sum(1 for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty)


def iter_batches(data: Any, batch_size: int = 256, model: Optional[nn.Module] = None,
                 argument: str = "calibration_data") -> Iterator[Example]:
    """The examples in ``data``: slices of one batched example, or the items of an iterable (DataLoader)."""
    if is_batched_example(data):
        n = leading_size(data)
        if n == 0:
            raise ValueError(f"{argument} is empty")
        for start in range(0, n, batch_size):
            yield take(data, start, start + batch_size)
        return
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(f"{argument} must be a tensor or array, a tuple/dict of them, or an iterable of such "
                        f"batches (e.g. a DataLoader), got {type(data).__name__}")
    arity = positional_arity(model) if model is not None else None
    seen = False
    for item in data:
        seen = True
        if isinstance(item, (tuple, list)) and len(item) == 2 and arity == 1:
            item = item[0]  # a labelled (x, y) batch feeding a one-argument forward
        yield item
    if not seen:
        raise ValueError(f"{argument} is empty")


class Batches:
    """The calibration batches of ``data``, read again at every pass: a ``DataLoader`` (any re-iterable) is
    streamed, never held whole; a one-shot iterator (a generator) is read once into memory.

    Example:
        >>> b = Batches(torch.zeros(600, 3), 256)
        >>> [len(x) for x in b], len(b.first)
        ([256, 256, 88], 256)
    """

    def __init__(self, data: Any, batch_size: int = 256, model: Optional[nn.Module] = None,
                 argument: str = "calibration_data") -> None:
        self._args = (data, batch_size, model, argument)
        self._held = list(iter_batches(*self._args)) if isinstance(data, Iterator) else None
        self.first = next(iter(self))

    def __iter__(self) -> Iterator[Example]:
        return iter(self._held) if self._held is not None else iter_batches(*self._args)


def check_dict_argument(model: nn.Module, example: Example, argument: str = "example_input") -> None:
    """``ValueError`` naming ``argument`` when ``model.forward``'s one required argument is annotated as a dict
    (sentence-transformers' ``forward(input: dict[str, Tensor])``) and ``example`` is not one."""
    if isinstance(example, Mapping):
        return
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(required) == 1 and any(word in str(required[0].annotation).lower() for word in ("dict", "mapping")):
        annotation = required[0].annotation
        annotation = annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)
        raise ValueError(f"{argument}: {type(model).__name__}.forward takes a dict ({required[0].name}: "
                         f"{annotation}), got {describe(example)}; pass the "
                         "tokenizer's features, e.g. {'input_ids': ..., 'attention_mask': ...}")


def first_batch(data: Any, batch_size: int = 1, model: Optional[nn.Module] = None,
                argument: str = "example_input") -> Example:
    """The first example of ``data``, cut to ``batch_size`` rows when ``data`` is one batched example."""
    example = next(iter_batches(data, batch_size, model, argument))
    if model is not None:
        check_dict_argument(model, example, argument)
    return example


def flatten(output: Any) -> list[torch.Tensor]:
    """The tensors of a model output in order: tensors, tuples/lists, dicts (``ModelOutput``), dataclasses, named tuples."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, Mapping):
        items: Iterable = output.values()
    elif dataclasses.is_dataclass(output) and not isinstance(output, type):
        items = (getattr(output, f.name) for f in dataclasses.fields(output))
    elif isinstance(output, (tuple, list)):
        items = output
    else:
        return []
    out: list[torch.Tensor] = []
    for item in items:
        out.extend(flatten(item))
    return out


def logits(output: Any) -> torch.Tensor:
    """The tensor a classifier's accuracy is read from: the first tensor of the output."""
    tensors = flatten(output)
    if not tensors:
        raise ValueError(f"the model returned no tensor (got {type(output).__name__})")
    return tensors[0]


def output_shapes(output: Any) -> list[tuple]:
    """Shapes of :func:`flatten`'s tensors, for checking that a compressed model still returns the same."""
    return [tuple(t.shape) for t in flatten(output)]


def guess_example(model: nn.Module, argument: str = "example_input") -> torch.Tensor:
    """A zero batch of one the model accepts, shaped from its first Linear/Conv layer.

    For a convolutional stem, tries the image size the model declares (a Hugging Face
    ``config.image_size``) first, then 28, 32, 64 and 224 pixels. Models whose input is
    not one float tensor (token ids, dicts, several arguments) need ``example_input``.
    """
    first = next((m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d))), None)
    if isinstance(first, nn.Linear):
        candidates = [torch.zeros(1, first.in_features)]
    elif isinstance(first, nn.Conv2d):
        declared = getattr(getattr(model, "config", None), "image_size", None)
        sizes = [declared if isinstance(declared, (tuple, list)) else (declared, declared)] \
            if isinstance(declared, int) or (isinstance(declared, (tuple, list)) and len(declared) == 2) else []
        sizes += [(s, s) for s in (28, 32, 64, 224)]
        candidates = [torch.zeros(1, first.in_channels, int(h), int(w)) for h, w in sizes]
    elif isinstance(first, nn.Conv1d):
        candidates = [torch.zeros(1, first.in_channels, s) for s in (28, 64, 256)]
    else:
        candidates = []
    was_training = model.training
    model.eval()
    try:
        for ex in candidates:
            try:
                with torch.no_grad():
                    call(model, ex)
                return ex.to(model_device(model))
            except Exception:  # noqa: BLE001 - any failure means "not this shape"
                continue
    finally:
        model.train(was_training)
    raise ValueError(f"{argument}: could not guess an input this model accepts; pass one batch of real input "
                     "(a tensor, a tuple of positional arguments or a dict of keyword arguments)")


def signature(example: Example) -> dict:
    """Structure, shapes and dtypes of an example (JSON), enough to rebuild a zero example of the same form.

    Example:
        >>> signature({"ids": torch.zeros(2, 3, dtype=torch.long)})
        {'form': 'dict', 'items': {'ids': {'form': 'tensor', 'shape': [2, 3], 'dtype': 'int64'}}}
    """
    if isinstance(example, Mapping):
        return {"form": "dict", "items": {str(k): signature(v) for k, v in example.items()}}
    if isinstance(example, (tuple, list)):
        return {"form": "tuple", "items": [signature(v) for v in example]}
    t = torch.as_tensor(example) if isinstance(example, np.ndarray) else example
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"inputs must be tensors or arrays, got {type(example).__name__}")
    return {"form": "tensor", "shape": [int(d) for d in t.shape], "dtype": str(t.dtype).removeprefix("torch.")}


def zeros(sig: dict, _depth: int = 0) -> Example:
    """A zero example of the form :func:`signature` describes (its values are zeros).

    The description may come from a file: forms, dtypes, depth and sizes are checked.
    """
    if _depth > 8 or not isinstance(sig, dict):
        raise ValueError(f"bad example signature {sig!r:.200}")
    form, items = sig.get("form"), sig.get("items")
    if form == "dict" and isinstance(items, dict):
        return {str(k): zeros(v, _depth + 1) for k, v in items.items()}
    if form == "tuple" and isinstance(items, list):
        return tuple(zeros(v, _depth + 1) for v in items)
    if form == "tensor":
        dtype = getattr(torch, str(sig.get("dtype")), None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown tensor dtype {sig.get('dtype')!r:.50}")
        shape = sig.get("shape")
        if not isinstance(shape, list) or not all(isinstance(n, int) and 0 <= n < 2 ** 31 for n in shape) or \
                int(np.prod(shape, dtype=object)) > 2 ** 26:
            raise ValueError(f"bad example shape {shape!r:.100}")
        return torch.zeros(shape, dtype=dtype)
    raise ValueError(f"bad example signature {sig!r:.200}")


__all__ = ["Example", "whole_dict_argument", "check_dict_argument", "to_call", "float_dtype", "model_device", "call", "leading_size", "take", "repeat", "describe",
           "is_batched_example", "positional_arity", "iter_batches", "first_batch", "flatten", "logits", "output_shapes",
           "guess_example", "signature", "zeros"]
