"""A bundle as one tar stream: what ``GET /versions/{id}/bundle.tar`` sends and a consumer
unpacks, so that loading a champion costs one request rather than one per file; in a bucket,
the one object a bundle is stored as (:func:`pack`, read back by :func:`read_files`).

The stream is a plain POSIX (pax) tar that ``tar -x`` reads: ``SHA256SUMS`` first, then every
file it lists, as regular files with no owner and no timestamp. Unpacking accepts nothing else:
a link, a device, a name outside the target directory or a name given twice is refused, and a
truncated stream is damaged. Whoever unpacks still verifies the whole against ``SHA256SUMS`` and
the registered digest (:func:`registry.bundle_cache.cache_bundle`): the tar carries the files,
it vouches for nothing.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from registry.errors import IntegrityFailure
from trainer.checksums import SUMS_NAME, read_sha256sums

CHUNK = 1 << 20


@dataclass(frozen=True)
class Member:
    header: bytes
    path: Path
    size: int

    @property
    def padding(self) -> int:
        return -self.size % tarfile.BLOCKSIZE


def members(bundle: Path) -> list[Member]:
    """The archive's entries for a sealed local bundle: ``SHA256SUMS``, then what it lists."""
    entries = []
    for rel in [SUMS_NAME, *read_sha256sums(bundle)]:
        path = bundle / rel
        size = path.stat().st_size
        entries.append(Member(_header(rel, size), path, size))
    return entries


def _header(rel: str, size: int) -> bytes:
    info = tarfile.TarInfo(rel)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info.tobuf(format=tarfile.PAX_FORMAT)


def pack(bundle: Path, sums: bytes, listed: dict[str, str]) -> bytes:
    """The archive of a sealed local bundle in one piece (what :func:`stream` yields), each
    file checked against ``listed`` (its ``SHA256SUMS``, whose bytes are ``sums``) as it is
    read: a file changed since the bundle was sealed is refused, never packed."""
    files = {SUMS_NAME: sums}
    for rel, expected in listed.items():
        path = bundle / rel
        files[rel] = data = path.read_bytes()
        if (actual := hashlib.sha256(data).hexdigest()) != expected:
            raise IntegrityFailure(f"{path}: changed since its bundle was sealed (expected "
                                   f"{expected[:12]}…, found {actual[:12]}…)")
    return pack_files(files)


def pack_files(files: dict[str, bytes]) -> bytes:
    """An archive of these files, in this order (:func:`read_files` gives them back)."""
    parts = []
    for rel, data in files.items():
        parts += [_header(rel, len(data)), data, _padding(len(data))]
    parts.append(b"\0" * (2 * tarfile.BLOCKSIZE))
    return b"".join(parts)


def _padding(size: int) -> bytes:
    return b"\0" * (-size % tarfile.BLOCKSIZE)


def archive_size(entries: list[Member]) -> int:
    """The bytes :func:`stream` yields (its Content-Length)."""
    return sum(len(e.header) + e.size + e.padding for e in entries) + 2 * tarfile.BLOCKSIZE


def stream(entries: list[Member]) -> Iterator[bytes]:
    """The archive, in pieces of about a MiB (a file is never held whole, and a bundle of
    small files goes in a few pieces, not three per file)."""
    pending = bytearray()
    for piece in _pieces(entries):
        pending += piece
        if len(pending) >= CHUNK:
            yield bytes(pending)
            pending.clear()
    yield bytes(pending)


def _pieces(entries: list[Member]) -> Iterator[bytes]:
    for entry in entries:
        yield entry.header
        left = entry.size
        with open(entry.path, "rb") as handle:
            while left and (chunk := handle.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk
        if left:  # the file shrank after it was listed: end the stream short, never shifted
            raise OSError(f"{entry.path}: shorter than when listed")
        yield b"\0" * entry.padding
    yield b"\0" * (2 * tarfile.BLOCKSIZE)


class _Chunks(io.RawIOBase):
    """Pieces of a byte stream read as a file (what ``tarfile`` reads from)."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks, self._pending = iter(chunks), memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return 0
            self._pending = memoryview(chunk)
        n = min(len(buffer), len(self._pending))
        buffer[:n], self._pending = self._pending[:n], self._pending[n:]
        return n


def unpack(chunks: Iterable[bytes], target: Path, *, name: str) -> int:
    """Write the files of an archive's ``chunks`` under the directory ``target``; returns their
    bytes. ``name`` stands for the bundle in errors."""
    written = 0
    try:
        with tarfile.open(fileobj=io.BufferedReader(_Chunks(chunks), CHUNK), mode="r|") as tar:
            for member in tar:
                _check(member, name)
                path = target / member.name
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                with open(path, "xb") as out:  # a name given twice is refused
                    shutil.copyfileobj(source, out, CHUNK)
                written += member.size
    except (tarfile.TarError, FileExistsError) as exc:
        raise IntegrityFailure(f"{name}: the bundle's archive is damaged ({exc})") from None
    return written


def read_files(data: bytes, *, name: str) -> dict[str, bytes]:
    """An archive's files, in its order, from its bytes in memory; refused as :func:`unpack`
    refuses (a link, a name outside the bundle or given twice, a truncated archive)."""
    files: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
            for member in tar:
                _check(member, name)
                if member.name in files:
                    raise tarfile.TarError(f"{member.name[:200]!r} given twice")
                source = tar.extractfile(member)
                assert source is not None  # a regular file
                files[member.name] = source.read()
    except tarfile.TarError as exc:
        raise IntegrityFailure(f"{name}: the bundle's archive is damaged ({exc})") from None
    return files


def _check(member: tarfile.TarInfo, name: str) -> None:
    if not member.isreg():
        raise IntegrityFailure(f"{name}: the bundle's archive holds {member.name[:200]!r}, "
                               "not a regular file")
    if tarfile.data_filter(member, "/bundle").name != member.name:
        raise tarfile.FilterError(f"{member.name[:200]!r}: not a relative path")
