"""``.clz`` files: a model of either framework, packed, without pickle.

A ``.clz`` file (format version 2) is a ZIP archive of exactly two entries:

* ``manifest.json`` (compact JSON, the only deflated entry): format version,
  framework, the backend's description of the architecture, and for every
  tensor its encoding (``core/packing.py``) with the ``dtype``, ``shape`` and
  byte ``offset`` of each stored part;
* ``tensors.bin`` (stored, not deflated, so its size is what the encodings
  achieve): the parts' raw little-endian bytes one after another, each
  starting on an 8-byte boundary.

Version 1 files (one ``.npy`` entry per part, written before compresslib 0.1.0) are refused with
an error that says so.

Loading treats the file as untrusted (the book's API page, "What ``load``
trusts", says exactly how far). The ZIP container is read by ``compresslib.archive.Archive``
(the bounded reader); this module is the format on top of it. Every size is checked against
:class:`Limits` *before* anything is allocated: the manifest is read through a bounded stream,
the number of tensors and parts, every dtype, shape and offset are checked, the
parts may not overlap and must tile ``tensors.bin`` exactly, and the decoded
tensors together may not exceed a budget proportional to the file's size.
Every failure is a ``ValueError`` that names the file and the part (a damaged
deflate stream included). Classes are looked up by exact name in a registry
(:func:`register_class`); nothing is unpickled and no module named by the file
is imported.

The backends (``compresslib/torch/io.py``, ``compresslib/keras/io.py``)
provide ``to_spec(model) -> (spec, tensors)`` and ``from_spec(spec, tensors, ...)``.

Example:
    >>> import compresslib as cl                                 # doctest: +SKIP
    >>> cl.save(model, "lenet5.clz"); m2 = cl.load("lenet5.clz")  # doctest: +SKIP
    >>> Limits().budget(1_000_000) // 2 ** 20                       # bytes a 1 MB file may decode to
    976
"""
from __future__ import annotations

import json
import os
import sys
import zipfile
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from compresslib._dispatch import FRAMEWORKS, backend, framework_of
from compresslib.archive import Archive, Limits
from compresslib.core import packing

FORMAT = "compresslib.clz"
VERSION = 2
MANIFEST = "manifest.json"
BLOB = "tensors.bin"
ALIGN = 8
def register_class(cls: type, name: Optional[str] = None) -> type:
    """Allow :func:`load` to construct ``cls`` (a ``torch.nn.Module`` subclass or a Keras layer class).

    Usable as a decorator. ``name`` is the name files use for the class: by default
    ``module.qualname`` for torch, and Keras's registered name for Keras
    (``keras.saving.get_registered_name``: ``"package>Name"`` after
    ``@keras.saving.register_keras_serializable(package=...)``). Registering another
    class under a taken name is a ``ValueError``. Loading only ever constructs
    registered classes, torch.nn's and Keras's public layers, and the objects passed to
    ``load(path, custom_objects=...)``; a registered class's code is trusted.

    Example:
        >>> import torch
        >>> @register_class
        ... class Scale(torch.nn.Module):
        ...     def forward(self, x):
        ...         return 2 * x
        >>> from compresslib.torch.io import lookup_class
        >>> lookup_class(f"{Scale.__module__}.Scale") is Scale
        True
    """
    if not isinstance(cls, type):
        raise TypeError(f"cls must be a class, got {type(cls).__name__}")
    if name is not None and (not isinstance(name, str) or not name):
        raise TypeError(f"name must be a non-empty string or None, got {name!r}")
    torch = sys.modules.get("torch")
    if torch is not None and issubclass(cls, torch.nn.Module):
        from compresslib.torch import io as tio

        return tio.register(cls, name)
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(cls, type):
        from compresslib.keras import io as kio

        if kio.is_registrable(cls):
            return kio.register(cls, name)
    raise TypeError(f"cls must be a torch.nn.Module subclass or a Keras layer, initializer, regularizer or "
                    f"constraint class, got {cls.__module__}.{cls.__qualname__}")
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
    spec, tensors = backend(framework, "io").to_spec(model)
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
        zf.writestr(zipfile.ZipInfo(MANIFEST, date_time=_EPOCH), text,
                    compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return os.path.getsize(path)


# --------------------------------------------------------------------------- reading, bounded
def _check_limits(limits: Optional[Limits]) -> Limits:
    if limits is None:
        return Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a compresslib.io.Limits or None, got {type(limits).__name__}")
    return limits


def read_manifest(path: str | os.PathLike, *, limits: Optional[Limits] = None) -> dict:
    """The manifest of a ``.clz`` file (framework, architecture, encodings), without loading arrays."""
    with Archive(path, _check_limits(limits)) as archive:
        return _manifest(archive)


def _manifest(archive: Archive) -> dict:
    if MANIFEST not in archive.entries:
        raise archive.error(f"not a compresslib .clz file (no {MANIFEST})")
    data = archive.read(MANIFEST, archive.limits.manifest_bytes, MANIFEST)
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise archive.error(f"corrupt {MANIFEST}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(manifest, dict):
        raise archive.error(f"corrupt {MANIFEST}: not a JSON object")
    version = manifest.get("version")
    if manifest.get("format") == FORMAT and type(version) is int and version == 1:
        raise archive.error("a version 1 .clz file (written before compresslib 0.1.0) is no longer read; "
                            f"save the model again with this compresslib (format version {VERSION})")
    if manifest.get("format") != FORMAT or type(version) is not int or version != VERSION:
        raise archive.error(f"unsupported format {packing.short(manifest.get('format'))} "
                            f"version {packing.short(version)} in {MANIFEST}")
    if manifest.get("framework") not in FRAMEWORKS:
        raise archive.error(f"{MANIFEST}: framework must be one of {FRAMEWORKS}, "
                            f"got {packing.short(manifest.get('framework'))}")
    if not isinstance(manifest.get("tensors"), dict) or not isinstance(manifest.get("spec"), dict):
        raise archive.error(f"corrupt {MANIFEST}: 'tensors' and 'spec' must be objects")
    if len(manifest["tensors"]) > archive.limits.tensors:
        raise archive.error(f"{MANIFEST} lists {len(manifest['tensors'])} tensors, more than the limit of "
                            f"{archive.limits.tensors}")
    expected = {MANIFEST, BLOB}
    if set(archive.entries) != expected:
        raise archive.error(f"corrupt .clz file: version 2 holds exactly {sorted(expected)}, "
                            f"this one {packing.short(sorted(archive.entries))}")
    return manifest


def _tensor_metas(manifest: dict, archive: Archive) -> tuple[dict[str, dict], int]:
    """Each tensor's description, checked (encoding, dtype, shape, parts count); and the decoded bytes in all."""
    key, other = "parts", "files"
    total = 0
    metas = {}
    for name, meta in manifest["tensors"].items():
        where = f"tensor {packing.short(name)}"
        try:
            nbytes = packing.decoded_nbytes(meta)
            parts = meta.get(key)
            if not isinstance(parts, dict) or other in meta:
                raise ValueError(f"a version {manifest['version']} file describes its stored arrays in a "
                                 f"{key!r} object (and has no {other!r})")
            if not 1 <= len(parts) <= archive.limits.parts:
                raise ValueError(f"{len(parts)} stored parts; 1 to {archive.limits.parts} are allowed")
        except ValueError as exc:
            raise archive.error(f"{where} in {MANIFEST} is corrupt: {exc}") from None
        total += nbytes
        metas[name] = meta
    budget = archive.limits.budget(archive.size)
    if total > budget:
        raise archive.error(f"the tensors in {MANIFEST} would take {total} bytes decoded, more than the limit of "
                            f"{budget} for a file of {archive.size} bytes (Limits.expansion={archive.limits.expansion},"
                            f" Limits.min_budget={archive.limits.min_budget}; raise them for a file you trust)")
    return metas, budget


def _layout(metas: dict[str, dict], archive: Archive, blob_size: int) -> dict[tuple[str, str], tuple]:
    """Where every part lies in the blob: ``(tensor, part) -> (dtype, shape, offset, count)``.

    Checks dtypes, shapes, offsets (non-negative, inside the blob), that no two parts overlap, and
    that the parts end exactly where ``tensors.bin`` does (declared against actual size).
    """
    layout, spans = {}, []
    for name, meta in metas.items():
        for part, where in meta["parts"].items():
            label = f"tensor {packing.short(name)} part {packing.short(part)}"
            try:
                if not isinstance(where, dict):
                    raise ValueError("not an object")
                dtype = packing.check_dtype(where.get("dtype"), "dtype").newbyteorder("<")
                shape = packing.check_shape(where.get("shape"), "shape")
                offset = where.get("offset")
                if type(offset) is not int or offset < 0:
                    raise ValueError(f"offset must be a non-negative integer, got {packing.short(offset)}")
                count = packing.n_elements(shape)
                end = offset + count * dtype.itemsize
                if end > blob_size:
                    raise ValueError(f"bytes {offset}..{end} lie outside {BLOB} ({blob_size} bytes)")
            except ValueError as exc:
                raise archive.error(f"{label} is corrupt: {exc}") from None
            layout[name, part] = (dtype, shape, offset, count)
            spans.append((offset, end, label))
    spans.sort(key=lambda s: (s[0], s[1]))
    last_end, last_label = 0, None
    for start, end, label in spans:
        if start < last_end and end > start:
            raise archive.error(f"{label} (bytes {start}..{end}) overlaps {last_label} in {BLOB}")
        if end >= last_end:
            last_end, last_label = end, label
    if last_end != blob_size:
        raise archive.error(f"corrupt {BLOB}: {blob_size} bytes, the parts in {MANIFEST} end at byte {last_end}")
    return layout


def _tensors(metas: dict[str, dict], archive: Archive) -> dict[str, np.ndarray]:
    info = archive.entries.get(BLOB)
    if info is None:
        raise archive.error(f"corrupt .clz file: no {BLOB} entry")
    layout = _layout(metas, archive, info.file_size)  # checked against the declared size before reading
    blob = archive.read_stored(BLOB, BLOB)
    tensors = {}
    for name, meta in metas.items():
        parts = {part: np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)
                 for part, (dtype, shape, offset, count) in ((p, layout[name, p]) for p in meta["parts"])}
        tensors[name] = _decode(name, meta, parts, archive)
    return tensors


def _decode(name: str, meta: dict, parts: dict[str, np.ndarray], archive: Archive) -> np.ndarray:
    try:
        array = packing.decode(meta, parts)
    except ValueError as exc:
        raise archive.error(f"tensor {packing.short(name)} is corrupt: {exc}") from None
    return array if array.flags.writeable else array.copy()  # a view of read-only bytes: own a writable copy


def load(path: str | os.PathLike, *, model: Any = None, custom_objects: Optional[Mapping[str, Any]] = None,
         limits: Optional[Limits] = None) -> Any:
    """Read a ``.clz`` file (format version 2) into a new model of the framework it was saved from.

    ``custom_objects`` maps the names a file uses to classes (and, for Keras, functions) that are
    not registered (:func:`register_class`): for torch, a node's class path
    (``"mypkg.blocks.Block"``) to an ``nn.Module`` subclass; for Keras, a registered name
    (``"mypkg>Block"``) to the object, as Keras's own ``custom_objects``. ``limits`` bounds sizes
    (:class:`Limits`). A file that is corrupt, too large or names a class outside the registry
    gives a ``ValueError`` naming the file and the part.

    ``model``: a fresh instance of the saved model's own class, for a model whose classes are the
    user's (a Hugging Face or custom ``nn.Module``, a subclassed Keras model): the file holds the
    compressed layers and every tensor, the instance supplies the user's code (it is copied,
    never changed). Without it such a file is refused naming the class to pass.

    Example:
        >>> m2 = load("lenet5.clz")                                        # doctest: +SKIP
        >>> m3 = load("mine.clz", custom_objects={"mypkg.blocks.Block": Block})  # doctest: +SKIP
    """
    limits = _check_limits(limits)
    if custom_objects is not None and (not isinstance(custom_objects, Mapping)
                                       or not all(isinstance(k, str) for k in custom_objects)):
        raise TypeError("custom_objects must be a mapping from the names a file uses (str) to classes, "
                        f"or None; got {type(custom_objects).__name__}")
    if model is not None:
        framework_of(model)  # TypeError naming model for anything that is not a model
    with Archive(path, limits) as archive:
        manifest = _manifest(archive)
        if model is not None and framework_of(model) != manifest["framework"]:
            raise TypeError(f"model: {path} holds a {manifest['framework']} model, model= is a "
                            f"{framework_of(model)} model")
        io = backend(manifest["framework"], "io")
        objects = io.check_custom_objects(custom_objects)
        metas, budget = _tensor_metas(manifest, archive)
        tensors = _tensors(metas, archive)
    try:
        return io.from_spec(manifest["spec"], tensors, custom_objects=objects, max_bytes=budget,
                          max_depth=limits.depth, model=model)
    except (ImportError, MemoryError):
        raise
    except ValueError as exc:  # refused by the backend's checks
        raise ValueError(f"{path}: spec in {MANIFEST}: {str(exc)[:1000]}") from exc
    except Exception as exc:  # the description does not rebuild: corrupt or crafted, never a crash
        raise ValueError(f"{path}: spec in {MANIFEST} does not rebuild a model: "
                         f"{type(exc).__name__}: {str(exc)[:500]}") from exc
