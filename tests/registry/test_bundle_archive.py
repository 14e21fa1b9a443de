"""A bundle as one tar: what the server streams (or a bucket holds) unpacks to the same,
verified bundle, and an archive that is not a plain bundle (a link, a path out of the target, a
name twice, a stream cut short) is refused, with nothing written outside the target."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from registry import bundle_archive
from registry.errors import IntegrityFailure
from registry.testing import write_stand_in_bundle
from trainer.checksums import SUMS_NAME, read_sha256sums, verified_digest, write_sha256sums


def _bundle(tmp_path: Path) -> Path:
    bundle = Path(write_stand_in_bundle(tmp_path / "root", "v1-linear-20250630-3fa2c1de"))
    (bundle / "a" / "deeply" / "nested").mkdir(parents=True)
    (bundle / "a" / "deeply" / "nested" / ("long-name-" * 12 + ".bin")).write_bytes(b"x" * 513)
    (bundle / "empty").write_bytes(b"")
    write_sha256sums(bundle)
    return bundle


def test_a_bundle_streams_and_unpacks_to_the_same_bundle(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    entries = bundle_archive.members(bundle)
    data = b"".join(bundle_archive.stream(entries))
    assert len(data) == bundle_archive.archive_size(entries)
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:  # plain tar: anything reads it
        names = tar.getnames()
    assert names[0] == SUMS_NAME and len(names) == 5
    target = tmp_path / "unpacked"
    target.mkdir()
    pieces = (data[i:i + 700] for i in range(0, len(data), 700))  # as the network cuts it
    written = bundle_archive.unpack(pieces, target, name="v1")
    assert written == sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    assert verified_digest(target) == verified_digest(bundle)


def test_a_packed_bundle_is_the_streamed_archive_and_reads_back(tmp_path: Path) -> None:
    bundle = _bundle(tmp_path)
    sums = (bundle / SUMS_NAME).read_bytes()
    listed = read_sha256sums(bundle)
    data = bundle_archive.pack(bundle, sums, listed)
    assert data == b"".join(bundle_archive.stream(bundle_archive.members(bundle)))
    files = bundle_archive.read_files(data, name="v1")
    assert list(files) == [SUMS_NAME, *listed]
    assert all(files[rel] == (bundle / rel).read_bytes() for rel in files)
    (bundle / "empty").write_bytes(b"changed")
    with pytest.raises(IntegrityFailure, match="empty: changed since its bundle was sealed"):
        bundle_archive.pack(bundle, sums, listed)


def _tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    sink = io.BytesIO()
    with tarfile.open(fileobj=sink, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            info.size = len(content) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return sink.getvalue()


def _file(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), b"data\n"


def _link(name: str, to: str) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, to
    return info, b""


@pytest.mark.parametrize(("archive", "why"), [
    (_tar(_file("../outside.txt")), "damaged"),
    (_tar(_file("/tmp/absolute.txt")), "damaged"),
    (_tar(_link("SHA256SUMS", "metadata.json")), "not a regular file"),
    (_tar(_link("escape", "../../outside.txt")), "not a regular file"),
    (_tar(_file("metadata.json"), _file("metadata.json")), "damaged"),
    (_tar(_file("metadata.json"))[:700], "damaged"),
], ids=["parent", "absolute", "link", "link-out", "twice", "cut-short"])
def test_an_archive_that_is_not_a_plain_bundle_is_refused(tmp_path: Path, archive: bytes,
                                                          why: str) -> None:
    target = tmp_path / "partial"
    target.mkdir()
    with pytest.raises(IntegrityFailure, match=f"^v1: the bundle's archive .*{why}"):
        bundle_archive.unpack([archive], target, name="v1")
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        p.name for p in target.rglob("*")) + ["partial"]  # nothing beside the target
    with pytest.raises(IntegrityFailure, match=f"^v1: the bundle's archive .*{why}"):
        bundle_archive.read_files(archive, name="v1")  # from a bucket, in memory
