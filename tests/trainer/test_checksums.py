"""Verification remembers digests only while a file's status is unchanged."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from trainer import checksums
from trainer.checksums import IntegrityError, verified_digest, write_sha256sums


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    bundle = tmp_path / "bundle"
    (bundle / "checkpoint").mkdir(parents=True)
    (bundle / "metadata.json").write_text('{"label": "a"}\n')
    (bundle / "checkpoint" / "weights").write_bytes(b"\x01" * 4096)
    write_sha256sums(bundle)
    return bundle


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the files hashed from now on."""
    hashed: list[str] = []
    real = hashlib.file_digest

    def counted(handle, digest):  # noqa: ANN001, ANN202
        hashed.append(os.path.basename(handle.name))
        return real(handle, digest)

    monkeypatch.setattr(checksums.hashlib, "file_digest", counted)
    monkeypatch.setattr(checksums, "_digests", {})
    return hashed


def test_an_unchanged_bundle_is_hashed_once(sealed: Path, hashes: list[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checksums, "RACY_SECONDS", -3600.0)  # every file long settled
    digest = verified_digest(sealed)
    assert sorted(hashes) == ["SHA256SUMS", "metadata.json", "weights"]
    hashes.clear()
    assert verified_digest(sealed, expected_digest=digest) == digest
    assert hashes == []


def test_a_file_just_written_is_hashed_again(sealed: Path, hashes: list[str]) -> None:
    verified_digest(sealed)
    hashes.clear()
    verified_digest(sealed)
    assert sorted(hashes) == ["SHA256SUMS", "metadata.json", "weights"]


def test_a_same_size_edit_right_after_a_check_is_refused(sealed: Path) -> None:
    verified_digest(sealed)
    weights = sealed / "checkpoint" / "weights"
    before = weights.stat()
    weights.write_bytes(b"\x02" * 4096)
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(IntegrityError, match="checksum mismatch for checkpoint/weights"):
        verified_digest(sealed)


@pytest.mark.parametrize("change", ["edited", "replaced"])
def test_a_remembered_file_that_changes_is_refused(sealed: Path, hashes: list[str],
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   change: str) -> None:
    monkeypatch.setattr(checksums, "RACY_SECONDS", -3600.0)
    verified_digest(sealed)
    weights = sealed / "checkpoint" / "weights"
    before = weights.stat()
    if change == "edited":  # another size
        weights.write_bytes(b"\x01" * 4097)
    else:  # same size and times, another file
        other = weights.with_name("other")
        other.write_bytes(b"\x02" * 4096)
        os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.replace(other, weights)
    hashes.clear()
    with pytest.raises(IntegrityError, match="checksum mismatch for checkpoint/weights"):
        verified_digest(sealed)
    assert "weights" in hashes
