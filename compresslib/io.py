"""``.clz`` files: a model of either framework, packed, without pickle.

A ``.clz`` file (format version 2) is a ZIP archive of exactly two entries:

* ``manifest.json`` (compact JSON, the only deflated entry): format version,
  framework, the backend's description of the architecture, and for every
  tensor its encoding (``core/packing.py``) with the ``dtype``, ``shape`` and
  byte ``offset`` of each stored part;
* ``tensors.bin`` (stored, not deflated, so its size is what the encodings
  achieve): the parts' raw little-endian bytes one after another, each
  starting on an 8-byte boundary.

Version 1 files (one ``<tensor>.<part>.npy`` entry per part) are still read;
their ``.npy`` headers are parsed and checked here, never by ``np.load``.

Loading treats the file as untrusted (the book's API page, "What ``load``
trusts", says exactly how far). Every size is checked against :class:`Limits`
*before* anything is allocated: the manifest is read through a bounded stream,
the number of tensors and parts, every dtype, shape and offset are checked, the
parts may not overlap and must tile ``tensors.bin`` exactly, and the decoded
tensors together may not exceed a budget proportional to the file's size.
Every failure is a ``ValueError`` that names the file and the part (a damaged
deflate stream included). Classes are looked up by exact name in a registry
(:func:`register_class`); nothing is unpickled and no module named by the file
is imported.

The backends (``compresslib/torch/io.py``, ``compresslib/keras/io.py``)
provide ``export(model) -> (spec, tensors)`` and ``rebuild(spec, tensors, ...)``.

Example:
    >>> import compresslib as cl                                 # doctest: +SKIP
    >>> cl.save(model, "lenet5.clz"); m2 = cl.load("lenet5.clz")  # doctest: +SKIP
    >>> Limits().budget(1_000_000) // 2 ** 20                       # bytes a 1 MB file may decode to
    976
"""
from __future__ import annotations

import ast
import dataclasses
import json
import os
import struct
import sys
import zipfile
import zlib
from collections.abc import Mapping
from typing import Any, Optional

import numpy as np

from compresslib._dispatch import FRAMEWORKS, backend, framework_of
from compresslib.core import packing

FORMAT = "compresslib.clz"
VERSION = 2
MANIFEST = "manifest.json"
BLOB = "tensors.bin"
ALIGN = 8
_CHUNK = 1 << 20

# What a damaged archive can raise from zipfile, zlib or struct while its entries are read.
_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, OSError, NotImplementedError,
               RuntimeError, struct.error, OverflowError, ValueError)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Bounds :func:`load` checks before it allocates anything; raise them only for files you trust.

    * ``manifest_bytes``: ``manifest.json``, compressed and inflated (read through a bounded stream);
    * ``tensors``: number of tensors; ``parts``: stored parts per tensor;
    * ``depth``: nesting of the architecture description (modules in modules);
    * ``expansion`` and ``min_budget``: the decoded tensors of a file of ``n`` bytes may take at most
      ``max(min_budget, expansion * n)`` bytes (sparse and constant encodings expand; 1024× is far
      beyond what a 99 %-sparse weight needs).

    Example:
        >>> Limits(tensors=10).tensors, Limits().budget(10)
        (10, 268435456)
    """

    manifest_bytes: int = 64 * 2 ** 20
    tensors: int = 100_000
    parts: int = 16
    depth: int = 100
    expansion: int = 1024
    min_budget: int = 256 * 2 ** 20

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Limits.{field.name} must be a positive integer, got {value!r}")

    def budget(self, file_bytes: int) -> int:
        """Bytes the decoded tensors of a file of ``file_bytes`` bytes may take."""
        return max(self.min_budget, self.expansion * int(file_bytes))


def register_class(cls: type, name: Optional[str] = None) -> type:
    """Allow :func:`load` to rebuild ``cls`` (a ``torch.nn.Module`` subclass or a Keras layer class).

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
        zf.writestr(zipfile.ZipInfo(MANIFEST, date_time=_EPOCH), text,
                    compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return os.path.getsize(path)


# --------------------------------------------------------------------------- reading, bounded
class _Archive:
    """An open ``.clz`` file whose entries are read raw and inflated under a bound; errors name the file.

    ``zipfile`` parses the central directory (its size is bounded by the file's); everything
    else (local headers, data, inflation, CRC-32) is read and checked here, so that what a
    header claims never decides how much is allocated.
    """

    def __init__(self, path: str | os.PathLike, limits: Limits) -> None:
        self.path, self.limits = path, limits
        if not os.path.isfile(path):
            raise FileNotFoundError(f"path: no such file {str(path)!r}")
        self.fh = open(path, "rb")  # an unreadable file is an OSError, not a corrupt one
        try:
            self.size = os.fstat(self.fh.fileno()).st_size
            try:
                with zipfile.ZipFile(self.fh) as zf:
                    self.infos = zf.infolist()
                    self.start_dir = zf.start_dir
            except _ZIP_ERRORS as exc:
                raise self.error(f"not a compresslib .clz file ({type(exc).__name__}: {exc})") from None
            names = [i.filename for i in self.infos]
            if len(set(names)) != len(names):
                raise self.error("not a compresslib .clz file (an entry name appears twice)")
            self.entries = {i.filename: i for i in self.infos}
            self.data_at: dict[str, int] = {}
            self._check_layout()
        except BaseException:
            self.fh.close()
            raise

    def _check_layout(self) -> None:
        """The archive is laid out exactly as :func:`save` writes it, so that no header byte goes unchecked.

        Local headers followed by their data tile the file from byte 0 to the central directory,
        which runs to the end record; each local header repeats its central-directory entry
        (flags, method, time, CRC, sizes, name); no extra fields, comments or attributes beyond
        what Python's ``zipfile`` writes. ZIP readers ignore most of these fields, so without this
        a flipped bit there would go unnoticed.
        """
        def bad(why: str) -> ValueError:
            return self.error(f"not a .clz file as compresslib writes it ({why})")

        self.fh.seek(max(0, self.size - 22))
        end = self.fh.read(22)
        if len(end) != 22 or end[:4] != b"PK\x05\x06":
            raise bad("the archive's end record is not at the end of the file")
        disk, cd_disk, n_disk, n_total, cd_size, cd_offset, comment = struct.unpack("<HHHHIIH", end[4:])
        zip64 = 0xFFFF in (n_disk, n_total) or 0xFFFFFFFF in (cd_size, cd_offset)
        names = {i.filename: i.orig_filename.encode("utf-8" if i.flag_bits & 0x800 else "cp437")
                 for i in self.infos}
        listed = sum(46 + len(names[i.filename]) + len(i.extra) + len(i.comment) for i in self.infos)
        if not zip64 and (disk or cd_disk or comment or n_disk != n_total or n_total != len(self.infos)
                          or cd_offset != self.start_dir or cd_offset + cd_size != self.size - 22
                          or listed != cd_size):
            raise bad("the end record does not match the central directory")
        if not zip64:  # the directory's own length fields (zipfile tolerates a short read of the last entry)
            self.fh.seek(self.start_dir)
            directory, at = self.fh.read(cd_size), 0
            for info in self.infos:
                head = directory[at:at + 46]
                if len(head) != 46 or head[:4] != b"PK\x01\x02":
                    raise bad("the central directory is cut short")
                nlen, xlen, clen = struct.unpack("<HHH", head[28:34])
                if (nlen, xlen, clen) != (len(names[info.filename]), len(info.extra), len(info.comment)) \
                        or directory[at + 46:at + 46 + nlen] != names[info.filename]:
                    raise bad(f"the directory entry of {info.filename[:40]!r} is inconsistent")
                at += 46 + nlen + xlen + clen
            if at != cd_size:
                raise bad("the central directory does not end where the end record says")
        position = 0
        for info in sorted(self.infos, key=lambda i: i.header_offset):
            name = names[info.filename]
            if info.header_offset != position:
                raise bad(f"{info.filename[:40]!r} starts at byte {info.header_offset}, expected {position}")
            self.fh.seek(position)
            local = self.fh.read(30 + len(name))
            if len(local) != 30 + len(name):
                raise bad("a local header is cut short")
            sig, version, flags, method, time, date, crc, csize, usize, nlen, xlen = struct.unpack(
                "<4sHHHHHIIIHH", local[:30])
            expected = (b"PK\x03\x04", info.extract_version, info.flag_bits, info.compress_type,
                        (info.date_time[3] << 11) | (info.date_time[4] << 5) | (info.date_time[5] // 2),
                        ((info.date_time[0] - 1980) << 9) | (info.date_time[1] << 5) | info.date_time[2])
            if (sig, version, flags, method, time, date) != expected or flags & ~0x800 or local[30:] != name \
                    or nlen != len(name) or (not zip64 and (crc, csize, usize) != (info.CRC, info.compress_size,
                                                                                  info.file_size)):
                raise bad(f"the local header of {info.filename[:40]!r} differs from its directory entry")
            if (xlen or info.extra) and not zip64 or info.comment or info.internal_attr or info.volume \
                    or info.reserved or info.external_attr != 0o600 << 16 or info.create_system not in (0, 3) \
                    or info.create_version != info.extract_version or info.extract_version not in (20, 45):
                raise bad(f"unexpected attributes on {info.filename[:40]!r}")
            self.data_at[info.filename] = position + 30 + nlen + xlen
            position += 30 + nlen + xlen + info.compress_size
        if position != self.start_dir:
            raise bad(f"{self.start_dir - position} bytes between the last entry and the central directory")

    def __enter__(self) -> "_Archive":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.fh.close()

    def error(self, message: str) -> ValueError:
        return ValueError(f"{self.path}: {message}")

    def read(self, name: str, limit: int, what: str) -> bytes:
        """The entry ``name``, at most ``limit`` bytes inflated; ``ValueError`` naming ``what`` otherwise.

        The deflate stream must end exactly where the entry does, and the CRC-32 must match.
        """
        info = self.entries.get(name)
        if info is None:
            if name == MANIFEST:
                raise self.error(f"not a compresslib .clz file (no {MANIFEST})")
            raise self.error(f"corrupt .clz file: no {name} entry (needed for {what})")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.error(f"corrupt {what}: compression method {info.compress_type} (only stored or deflated)")
        if info.file_size > limit or info.compress_size > limit:
            raise self.error(f"{what} declares {info.file_size} bytes ({info.compress_size} compressed), more than "
                             f"the limit of {limit}")
        self.fh.seek(self.data_at[name])
        raw = self.fh.read(info.compress_size)  # inside the file: the layout check saw it tile the file
        if info.compress_type == zipfile.ZIP_STORED:
            data = raw
        else:
            inflater = zlib.decompressobj(-15)
            try:  # never more than one byte beyond the declared size, itself within the limit
                data = inflater.decompress(raw, info.file_size + 1)
            except zlib.error as exc:
                raise self.error(f"corrupt {what}: error: {exc}") from None
            if len(data) > info.file_size:
                raise self.error(f"corrupt {what}: it inflates to more than the {info.file_size} bytes declared")
            if not inflater.eof or inflater.unused_data or inflater.unconsumed_tail:
                raise self.error(f"corrupt {what}: the deflate stream does not end where the entry does")
        if len(data) != info.file_size:
            raise self.error(f"corrupt {what}: {len(data)} bytes, the archive declares {info.file_size}")
        if zlib.crc32(data) != info.CRC:
            raise self.error(f"corrupt {what}: bad CRC-32")
        return data

    def read_blob(self, what: str) -> memoryview:
        """``tensors.bin`` into a writable buffer of its declared size (checked against the file), CRC-checked."""
        info = self.entries.get(BLOB)
        if info is None:
            raise self.error(f"corrupt .clz file: no {BLOB} entry")
        if info.compress_type != zipfile.ZIP_STORED:
            raise self.error(f"corrupt {what}: it must be stored (not compressed)")
        if info.file_size != info.compress_size or info.file_size > self.size:
            raise self.error(f"corrupt {what}: declares {info.file_size} bytes ({info.compress_size} stored) in a "
                             f"file of {self.size} bytes")
        buffer = bytearray(info.file_size)  # bounded by the file's own size; writable for torch.from_numpy
        view = memoryview(buffer)
        self.fh.seek(self.data_at[BLOB])
        done, crc = 0, 0
        while done < len(buffer):
            got = self.fh.readinto(view[done:done + _CHUNK])
            if not got:
                raise self.error(f"corrupt {what}: the archive declares {len(buffer)} bytes, it holds {done}")
            crc = zlib.crc32(view[done:done + got], crc)
            done += got
        if crc != info.CRC:
            raise self.error(f"corrupt {what}: bad CRC-32")
        return view


def _check_limits(limits: Optional[Limits]) -> Limits:
    if limits is None:
        return Limits()
    if not isinstance(limits, Limits):
        raise TypeError(f"limits must be a compresslib.io.Limits or None, got {type(limits).__name__}")
    return limits


def read_manifest(path: str | os.PathLike, *, limits: Optional[Limits] = None) -> dict:
    """The manifest of a ``.clz`` file (framework, architecture, encodings), without loading arrays."""
    with _Archive(path, _check_limits(limits)) as archive:
        return _manifest(archive)


def _manifest(archive: _Archive) -> dict:
    data = archive.read(MANIFEST, archive.limits.manifest_bytes, MANIFEST)
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, nesting too deep
        raise archive.error(f"corrupt {MANIFEST}: {type(exc).__name__}: {str(exc)[:200]}") from None
    if not isinstance(manifest, dict):
        raise archive.error(f"corrupt {MANIFEST}: not a JSON object")
    version = manifest.get("version")
    if manifest.get("format") != FORMAT or type(version) is not int or version not in (1, VERSION):
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
    expected = {MANIFEST, BLOB} if version >= 2 else None
    if expected is not None and set(archive.entries) != expected:
        raise archive.error(f"corrupt .clz file: version 2 holds exactly {sorted(expected)}, "
                            f"this one {packing.short(sorted(archive.entries))}")
    if version == 1 and BLOB in archive.entries:
        raise archive.error(f"corrupt .clz file: a version 1 file has no {BLOB}")
    return manifest


def _tensor_metas(manifest: dict, archive: _Archive) -> tuple[dict[str, dict], int]:
    """Each tensor's description, checked (encoding, dtype, shape, parts count); and the decoded bytes in all."""
    key = "parts" if manifest["version"] >= 2 else "files"
    other = "files" if key == "parts" else "parts"
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


def _layout_v2(metas: dict[str, dict], archive: _Archive, blob_size: int) -> dict[tuple[str, str], tuple]:
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


def _tensors_v2(metas: dict[str, dict], archive: _Archive) -> dict[str, np.ndarray]:
    info = archive.entries.get(BLOB)
    if info is None:
        raise archive.error(f"corrupt .clz file: no {BLOB} entry")
    layout = _layout_v2(metas, archive, info.file_size)  # checked against the declared size before reading
    blob = archive.read_blob(BLOB)
    tensors = {}
    for name, meta in metas.items():
        parts = {part: np.frombuffer(blob, dtype=dtype, count=count, offset=offset).reshape(shape)
                 for part, (dtype, shape, offset, count) in ((p, layout[name, p]) for p in meta["parts"])}
        tensors[name] = _decode(name, meta, parts, archive)
    return tensors


def _decode(name: str, meta: dict, parts: dict[str, np.ndarray], archive: _Archive) -> np.ndarray:
    try:
        array = packing.decode(meta, parts)
    except ValueError as exc:
        raise archive.error(f"tensor {packing.short(name)} is corrupt: {exc}") from None
    return array if array.flags.writeable else array.copy()  # a view of read-only bytes: own a writable copy


def _npy(data: bytes, what: str) -> np.ndarray:
    """A ``.npy`` image parsed without ``np.load``: its header checked (numeric dtype, shape, size) first."""
    if not data.startswith(b"\x93NUMPY") or len(data) < 10:
        raise ValueError(f"{what} is not a .npy array")
    major = data[6]
    if major == 1:
        length, start = struct.unpack("<H", data[8:10])[0], 10
    elif major in (2, 3):
        if len(data) < 12:
            raise ValueError(f"{what} is not a .npy array")
        length, start = struct.unpack("<I", data[8:12])[0], 12
    else:
        raise ValueError(f"{what}: unknown .npy version {major}")
    if length > 10_000 or start + length > len(data):
        raise ValueError(f"{what}: .npy header of {length} bytes does not fit")
    try:
        header = ast.literal_eval(data[start:start + length].decode("latin1" if major < 3 else "utf8"))
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError) as exc:
        raise ValueError(f"{what}: unreadable .npy header ({type(exc).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"{what}: .npy header must hold descr, fortran_order and shape")
    descr = header["descr"]
    if not isinstance(descr, str) or len(descr) > 8:
        raise ValueError(f"{what}: .npy dtype {packing.short(descr)} is not an allowed numeric dtype")
    try:
        dtype = np.dtype(descr)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: .npy dtype {packing.short(descr)} is not a dtype") from None
    packing.check_dtype(dtype.name, f"{what} dtype")
    shape = packing.check_shape(header["shape"], f"{what} shape")
    count = packing.n_elements(shape)
    body = len(data) - start - length
    if count * dtype.itemsize != body:
        raise ValueError(f"{what}: shape {list(shape)} of {dtype} needs {count * dtype.itemsize} bytes, "
                         f"the entry holds {body}")
    order = "F" if header["fortran_order"] is True else "C"
    return np.frombuffer(data, dtype=dtype, count=count, offset=start + length).reshape(shape, order=order)


def _tensors_v1(metas: dict[str, dict], archive: _Archive, budget: int) -> dict[str, np.ndarray]:
    tensors, left = {}, budget
    for name, meta in metas.items():
        parts = {}
        for part, entry in meta["files"].items():
            what = f"tensor {packing.short(name)} part {packing.short(part)}"
            if not isinstance(entry, str) or entry == MANIFEST:
                raise archive.error(f"{what} is corrupt: entry name {packing.short(entry)} is not an array entry")
            data = archive.read(entry, left, f"{what} ({entry})")
            left -= len(data)
            try:
                parts[part] = _npy(data, entry)
            except ValueError as exc:
                raise archive.error(f"{what} is corrupt: {exc}") from None
        tensors[name] = _decode(name, meta, parts, archive)
    return tensors


def load(path: str | os.PathLike, *, model: Any = None, custom_objects: Optional[Mapping[str, Any]] = None,
         limits: Optional[Limits] = None) -> Any:
    """Read a ``.clz`` file (version 1 or 2) into a new model of the framework it was saved from.

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
    with _Archive(path, limits) as archive:
        manifest = _manifest(archive)
        if model is not None and framework_of(model) != manifest["framework"]:
            raise TypeError(f"model: {path} holds a {manifest['framework']} model, model= is a "
                            f"{framework_of(model)} model")
        io = backend(manifest["framework"], "io")
        objects = io.check_custom_objects(custom_objects)
        metas, budget = _tensor_metas(manifest, archive)
        if manifest["version"] >= 2:
            tensors = _tensors_v2(metas, archive)
        else:
            tensors = _tensors_v1(metas, archive, budget)
    try:
        return io.rebuild(manifest["spec"], tensors, custom_objects=objects, max_bytes=budget,
                          max_depth=limits.depth, model=model)
    except (ImportError, MemoryError):
        raise
    except ValueError as exc:  # refused by the backend's checks
        raise ValueError(f"{path}: spec in {MANIFEST}: {str(exc)[:1000]}") from exc
    except Exception as exc:  # the description does not rebuild: corrupt or crafted, never a crash
        raise ValueError(f"{path}: spec in {MANIFEST} does not rebuild a model: "
                         f"{type(exc).__name__}: {str(exc)[:500]}") from exc
