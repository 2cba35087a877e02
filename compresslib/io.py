"""``.clz`` files: a model of either framework, packed, without pickle.

A ``.clz`` file is a ZIP archive (entries stored, not deflated, so its size
is what the encodings achieve) holding:

* ``manifest.json``: format version, framework, the backend's description of
  the architecture, and for every tensor its encoding (``core/packing.py``);
* ``<tensor>.<part>.npy``: the arrays, read back with ``allow_pickle=False``.

The backends (``compresslib/torch/io.py``, ``compresslib/keras/io.py``)
provide ``export(model) -> (spec, tensors)`` and ``rebuild(spec, tensors)``.

Example:
    >>> import compresslib as cl                                 # doctest: +SKIP
    >>> cl.save(model, "lenet5.clz"); m2 = cl.load("lenet5.clz")  # doctest: +SKIP
"""
from __future__ import annotations

import io as _io
import json
import os
import zipfile
from typing import Any

import numpy as np

from compresslib._dispatch import backend, check_framework, framework_of
from compresslib.core import packing

FORMAT = "compresslib.clz"
VERSION = 1


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def save(model: Any, path: str | os.PathLike, encoding: str | None = None) -> int:
    """Write ``model`` to ``path``; return the file's size in bytes.

    ``encoding`` forces one tensor encoding for every float tensor (default:
    the smallest per tensor).
    """
    framework = framework_of(model)
    spec, tensors = backend(framework, "io").export(model)
    manifest = {"format": FORMAT, "version": VERSION, "framework": framework, "spec": spec, "tensors": {}}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for i, (name, array) in enumerate(tensors.items()):
            array = np.asarray(array)
            if array.dtype == object:
                raise TypeError(f"tensor {name!r} has dtype object; only numeric arrays can be saved")
            meta, parts = packing.encode(array, encoding if array.dtype.kind == "f" else None)
            files = {}
            for part, values in parts.items():
                entry = f"t{i:04d}.{part}.npy"
                zf.writestr(entry, _npy_bytes(values))
                files[part] = entry
            manifest["tensors"][name] = dict(meta, files=files)
        zf.writestr("manifest.json", json.dumps(manifest, indent=1))  # no sort_keys: child order matters
    return os.path.getsize(path)


def read_manifest(path: str | os.PathLike) -> dict:
    """The manifest of a ``.clz`` file (framework, architecture, encodings), without loading arrays."""
    with zipfile.ZipFile(path) as zf:
        return _manifest(zf, path)


def _manifest(zf: zipfile.ZipFile, path) -> dict:
    try:
        manifest = json.loads(zf.read("manifest.json"))
    except KeyError as exc:
        raise ValueError(f"{path}: not a compresslib .clz file (no manifest.json)") from exc
    if manifest.get("format") != FORMAT or manifest.get("version", 0) > VERSION:
        raise ValueError(f"{path}: unsupported format {manifest.get('format')!r} version {manifest.get('version')!r}")
    check_framework(manifest.get("framework"))
    return manifest


def load(path: str | os.PathLike) -> Any:
    """Read a ``.clz`` file into a new model of the framework it was saved from."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    with zipfile.ZipFile(path) as zf:
        manifest = _manifest(zf, path)
        tensors = {}
        for name, meta in manifest["tensors"].items():
            parts = {part: np.load(_io.BytesIO(zf.read(entry)), allow_pickle=False)
                     for part, entry in meta["files"].items()}
            tensors[name] = packing.decode(meta, parts)
    return backend(manifest["framework"], "io").rebuild(manifest["spec"], tensors)
