"""``.clz`` files: a model of either framework, packed, without pickle.

A ``.clz`` file (format version 2) is a ZIP archive of two entries:

* ``manifest.json`` (compact JSON, the only deflated entry): format version,
  framework, the backend's description of the architecture, and for every
  tensor its encoding (``core/packing.py``) with the ``dtype``, ``shape`` and
  byte ``offset`` of each stored part;
* ``tensors.bin`` (stored, not deflated, so its size is what the encodings
  achieve): the parts' raw little-endian bytes one after another, each
  starting on an 8-byte boundary.

Version 1 files (one ``<tensor>.<part>.npy`` entry per part, read with
``allow_pickle=False``) are still read. Loading checks every offset, length,
dtype (numeric only) and shape against the file, so a corrupt file gives a
``ValueError``.

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
VERSION = 2
BLOB = "tensors.bin"
ALIGN = 8
_EPOCH = (1980, 1, 1, 0, 0, 0)


def _little(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    return array.astype(array.dtype.newbyteorder("<"), copy=False)


def save(model: Any, path: str | os.PathLike, encoding: str | None = None) -> int:
    """Write ``model`` to ``path``; return the file's size in bytes.

    ``encoding`` forces one tensor encoding for every float tensor (default:
    the smallest per tensor).
    """
    framework = framework_of(model)
    spec, tensors = backend(framework, "io").export(model)
    manifest = {"format": FORMAT, "version": VERSION, "framework": framework, "spec": spec, "tensors": {}}
    blob = bytearray()
    for name, array in tensors.items():
        array = np.asarray(array)
        if array.dtype == object:
            raise TypeError(f"tensor {name!r} has dtype object; only numeric arrays can be saved")
        meta, parts = packing.encode(array, encoding if array.dtype.kind == "f" else None)
        stored = {}
        for part, values in parts.items():
            blob.extend(b"\0" * (-len(blob) % ALIGN))
            stored[part] = {"dtype": values.dtype.name, "shape": list(values.shape), "offset": len(blob)}
            blob.extend(_little(values).tobytes())
        manifest["tensors"][name] = dict(meta, parts=stored)
    text = json.dumps(manifest, separators=(",", ":"))  # no sort_keys: child order matters
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        # a fixed timestamp in the ZIP headers: the same model gives the same bytes
        zf.writestr(zipfile.ZipInfo(BLOB, date_time=_EPOCH), bytes(blob))
        zf.writestr(zipfile.ZipInfo("manifest.json", date_time=_EPOCH), text,
                    compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
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
    except (ValueError, zipfile.BadZipFile) as exc:  # JSONDecodeError, bad deflate stream or CRC
        raise ValueError(f"{path}: corrupt manifest.json: {exc}") from exc
    if not isinstance(manifest, dict):
        raise ValueError(f"{path}: corrupt manifest.json: not a JSON object")
    version = manifest.get("version")
    if manifest.get("format") != FORMAT or version not in (1, VERSION):
        raise ValueError(f"{path}: unsupported format {manifest.get('format')!r} version {version!r}")
    check_framework(manifest.get("framework"))
    if not isinstance(manifest.get("tensors"), dict) or not isinstance(manifest.get("spec"), dict):
        raise ValueError(f"{path}: corrupt manifest.json: 'tensors' and 'spec' must be objects")
    return manifest


def _parts_v2(meta: dict, blob: memoryview) -> dict[str, np.ndarray]:
    """The stored parts of one tensor: views into ``blob``, after checking each against it."""
    parts = meta.get("parts")
    if not isinstance(parts, dict):
        raise ValueError("no 'parts' object")
    out = {}
    for part, where in parts.items():
        if not isinstance(where, dict):
            raise ValueError(f"part {part!r}: not an object")
        dtype = packing.check_dtype(where.get("dtype"), f"part {part!r} dtype").newbyteorder("<")
        shape = packing.check_shape(where.get("shape"), f"part {part!r} shape")
        offset = where.get("offset")
        if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
            raise ValueError(f"part {part!r}: offset must be a non-negative integer, got {offset!r}")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        nbytes = count * dtype.itemsize
        if offset + nbytes > len(blob):
            raise ValueError(f"part {part!r}: bytes {offset}..{offset + nbytes} lie outside "
                             f"{BLOB} ({len(blob)} bytes)")
        out[part] = np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)
    return out


def _parts_v1(meta: dict, zf: zipfile.ZipFile) -> dict[str, np.ndarray]:
    files = meta.get("files")
    if not isinstance(files, dict):
        raise ValueError("no 'files' object")
    return {part: np.load(_io.BytesIO(zf.read(entry)), allow_pickle=False) for part, entry in files.items()}


def load(path: str | os.PathLike) -> Any:
    """Read a ``.clz`` file (version 1 or 2) into a new model of the framework it was saved from."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a compresslib .clz file ({exc})") from exc
    with zf:
        manifest = _manifest(zf, path)
        if manifest["version"] >= 2:
            try:  # a bytearray: the arrays viewing it are writable (torch.from_numpy wants that)
                blob = memoryview(bytearray(zf.read(BLOB)))
            except KeyError as exc:
                raise ValueError(f"{path}: corrupt .clz file (no {BLOB})") from exc
            except zipfile.BadZipFile as exc:
                raise ValueError(f"{path}: corrupt {BLOB}: {exc}") from exc
        tensors = {}
        for name, meta in manifest["tensors"].items():
            try:
                if not isinstance(meta, dict):
                    raise ValueError("not an object")
                parts = _parts_v2(meta, blob) if manifest["version"] >= 2 else _parts_v1(meta, zf)
                array = packing.decode(meta, parts)  # may view the read-only blob: own a writable copy
                tensors[name] = array if array.flags.writeable else array.copy()
            except (ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{path}: tensor {name!r} is corrupt: {exc}") from exc
    return backend(manifest["framework"], "io").rebuild(manifest["spec"], tensors)
