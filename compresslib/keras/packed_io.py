"""Packed GPTQ/AWQ kernels in Keras ``.clz`` files: ``bits``-bit codes and group scales instead of float32.

``cl.quantize(model, cl.GPTQ(...) | cl.AWQ(...))`` leaves each Keras kernel holding its
dequantized values (Keras 3 has no layer for compresslib's symmetric group codes) and
:func:`remember` keeps the codes on the layer. :func:`pack` (called by
``compresslib.keras.io.to_spec``) stores such a kernel as the same three arrays torch's
``WeightOnlyLinear`` holds: ``codes`` packed by :func:`compresslib.core.packing.pack_codes`, one float32
``scale`` per group and AWQ's ``input_scale`` per input channel, so a kernel costs about
``bits + 32 / group_size`` bits per weight on disk. It does so only while the kernel still
equals what the codes give, bit for bit (a kernel changed since, e.g. by fine-tuning, is stored
as float). :func:`unpack` (called by ``from_spec`` before anything is built) checks every entry
and turns it back into the float kernel, so the loaded model computes exactly what the saved one
did; :func:`attach` gives the loaded layers their codes again, so saving it again stays packed.

Example:
    >>> import keras, numpy as np
    >>> from compresslib.core.layerwise import Result
    >>> m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, use_bias=False)])
    >>> r = Result(q=np.array([[1, -2, 3, 0], [0, 1, -1, 2]], np.int8),
    ...            scale=np.array([[0.5], [0.25]], np.float32), bits=4, group_size=4)
    >>> _ = m.layers[0].kernel.assign(kernel_of(r, (4, 2))); remember(m.layers[0], r)
    >>> spec, tensors = {}, {"w000": np.asarray(m.layers[0].kernel.numpy())}
    >>> pack(m, spec, tensors)
    >>> sorted(tensors), spec["packed"]["w000"]["bits"]
    (['w000#codes', 'w000#scale'], 4)
    >>> _, back, _ = unpack(spec, tensors)
    >>> back["w000"].T.tolist()
    [[0.5, -1.0, 1.5, 0.0], [0.0, 0.25, -0.25, 0.5]]
"""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from compresslib.core import packing
from compresslib.core.layerwise import Result

ATTR = "_compresslib_codes"  # on a layer: the Result its kernel was quantized from
_ENTRY_KEYS = {"bits", "group_size", "fan_in", "shape", "input_scale"}
_NAME = re.compile(r"w\d{3,}")


def remember(layer: Any, result: Result) -> None:
    """Keep ``result`` (codes, scales, AWQ's input scales) on ``layer`` for :func:`pack` (not a tracked attribute)."""
    object.__setattr__(layer, ATTR, result)


def kernel_of(result: Result, shape: tuple) -> np.ndarray:
    """The float32 kernel (Keras layout ``shape``: fan-in axes first) that ``result``'s codes give."""
    return np.ascontiguousarray(result.dequantize().T.reshape(shape).astype(np.float32))


def _coded_kernels(model: Any) -> dict[int, Result]:
    out = {}
    for layer in model._flatten_layers(include_self=False, recursive=True):
        result = vars(layer).get(ATTR)
        if result is not None and getattr(layer, "quantization_mode", None) is None:
            out[id(layer.kernel)] = result
    return out


def pack(model: Any, spec: dict, tensors: dict[str, np.ndarray]) -> None:
    """Replace, in ``tensors`` (``w000``…, in ``model.weights`` order), every kernel that still equals its
    remembered codes by ``name#codes``, ``name#scale`` (and ``name#input_scale``); list them in ``spec["packed"]``."""
    coded = _coded_kernels(model)
    if not coded:
        return
    packed = {}
    for i, variable in enumerate(model.weights):
        result = coded.get(id(variable))
        name = f"w{i:03d}"
        current = tensors.get(name)
        if result is None or current is None or current.dtype != np.float32:
            continue
        if not np.array_equal(kernel_of(result, current.shape).view(np.uint32), current.view(np.uint32)):
            continue  # changed since it was quantized: stored as float
        fan_in = int(result.q.shape[1])
        packed[name] = {"bits": int(result.bits), "group_size": int(result.group_size), "fan_in": fan_in,
                        "shape": [int(d) for d in current.shape], "input_scale": result.input_scale is not None}
        del tensors[name]
        tensors[name + "#codes"] = packing.pack_codes(result.q, result.bits)
        tensors[name + "#scale"] = np.asarray(result.scale, np.float32)
        if result.input_scale is not None:
            tensors[name + "#input_scale"] = np.asarray(result.input_scale, np.float32)
    if packed:
        spec["packed"] = packed


def _entry(name: Any, entry: Any, tensors: dict) -> Result:
    """Check one ``spec["packed"]`` entry against the file's arrays; its codes as a :class:`Result`."""
    where = f"packed kernel {str(name)[:40]!r}"
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in tensors:
        raise ValueError(f"{where}: must name a Keras weight (w000, ...) the file holds no float tensor for")
    if not isinstance(entry, dict) or set(entry) != _ENTRY_KEYS:
        raise ValueError(f"{where}: is described by exactly {sorted(_ENTRY_KEYS)}")
    bits, gs, fan_in, shape = entry["bits"], entry["group_size"], entry["fan_in"], entry["shape"]
    if bits not in packing.CODE_BITS or type(bits) is not int:
        raise ValueError(f"{where}: bits must be one of {packing.CODE_BITS}, got {str(bits)[:20]}")
    shape = packing.check_shape(shape, f"{where}: shape")
    n = packing.n_elements(shape)
    if not (type(fan_in) is int and type(gs) is int and fan_in > 0 and gs > 0 and n % fan_in == 0
            and fan_in % gs == 0 and n > 0):
        raise ValueError(f"{where}: fan_in and group_size must be positive integers dividing the kernel's "
                         f"{n} elements and its fan-in")
    if not isinstance(entry["input_scale"], bool):
        raise ValueError(f"{where}: input_scale must be true or false")
    parts = ["codes", "scale"] + (["input_scale"] if entry["input_scale"] else [])
    missing = [p for p in parts if f"{name}#{p}" not in tensors]
    if missing:
        raise ValueError(f"{where}: the file has no {name}#{missing[0]}")
    out = n // fan_in
    codes = packing.unpack_codes(tensors[f"{name}#codes"], n, bits)
    sizes = {"scale": out * (fan_in // gs), "input_scale": fan_in}
    arrays = {}
    for part in parts[1:]:
        a = np.asarray(tensors[f"{name}#{part}"])
        if a.dtype != np.float32 or a.size != sizes[part]:
            raise ValueError(f"{where}: {part} must hold {sizes[part]} float32 values, got {a.size} {a.dtype}")
        arrays[part] = a
    return Result(q=codes.reshape(out, fan_in), scale=arrays["scale"].reshape(out, fan_in // gs), bits=bits,
                  group_size=gs, input_scale=arrays.get("input_scale"))


def unpack(spec: Any, tensors: dict[str, np.ndarray]) -> tuple[Any, dict[str, np.ndarray], dict[str, Result]]:
    """``(spec without "packed", tensors with float kernels, {name: codes})``; ``ValueError`` if an entry is off.

    Anything but a Keras model description with ``"packed"`` comes back as it is.
    """
    if not isinstance(spec, dict) or "packed" not in spec:
        return spec, tensors, {}
    entries = spec["packed"]
    if not isinstance(entries, dict) or not entries:
        raise ValueError("packed must map weight names to their codes' description")
    results = {name: _entry(name, entry, tensors) for name, entry in entries.items()}
    tensors = dict(tensors)
    for name, result in results.items():
        for part in ("codes", "scale", "input_scale"):
            tensors.pop(f"{name}#{part}", None)
        tensors[name] = kernel_of(result, tuple(entries[name]["shape"]))
    return {k: v for k, v in spec.items() if k != "packed"}, tensors, results


def attach(model: Any, results: dict[str, Result]) -> Any:
    """Give the loaded ``model``'s kernels their codes again (:func:`remember`), so saving it again stays packed."""
    if not results:
        return model
    owners = {id(layer.kernel): layer for layer in model._flatten_layers(include_self=False, recursive=True)
              if getattr(layer, "quantization_mode", None) is None and hasattr(layer, "kernel")
              and type(layer).__name__ in ("Dense", "EinsumDense")}
    for i, variable in enumerate(model.weights):
        layer = owners.get(id(variable))
        if layer is not None and f"w{i:03d}" in results:
            remember(layer, results[f"w{i:03d}"])
    return model


__all__ = ["ATTR", "attach", "kernel_of", "pack", "remember", "unpack"]
