"""The bounded ZIP reader under ``.clz`` files: an archive checked byte for byte before anything is read.

:class:`Archive` opens a ZIP file that must be laid out exactly as Python's ``zipfile`` writes it
(local headers tiling the file, each repeating its directory entry, no extra fields or comments) and
reads entries raw, inflating under an explicit bound and checking CRC-32, so that what a header
claims never decides how much is allocated. :class:`Limits` holds the bounds the ``.clz`` format
(:mod:`compresslib.io`) checks. Every failure is a ``ValueError`` naming the file.

Example:
    >>> import os, tempfile, zipfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.zip")
    >>> with zipfile.ZipFile(path, "w") as zf:
    ...     zf.writestr("hello.txt", "hi")
    >>> with Archive(path, Limits()) as archive:
    ...     archive.read("hello.txt", 10, "hello.txt")
    b'hi'
"""
from __future__ import annotations

import dataclasses
import os
import struct
import zipfile
import zlib
from typing import Any

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


class Archive:
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

    def __enter__(self) -> "Archive":
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

    def read_stored(self, name: str, what: str) -> memoryview:
        """The stored (not deflated) entry ``name`` into a writable buffer of its declared size (checked
        against the file's), CRC-checked."""
        info = self.entries.get(name)
        if info is None:
            raise self.error(f"corrupt .clz file: no {name} entry")
        if info.compress_type != zipfile.ZIP_STORED:
            raise self.error(f"corrupt {what}: it must be stored (not compressed)")
        if info.file_size != info.compress_size or info.file_size > self.size:
            raise self.error(f"corrupt {what}: declares {info.file_size} bytes ({info.compress_size} stored) in a "
                             f"file of {self.size} bytes")
        buffer = bytearray(info.file_size)  # bounded by the file's own size; writable for torch.from_numpy
        view = memoryview(buffer)
        self.fh.seek(self.data_at[name])
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


__all__ = ["Archive", "Limits"]
