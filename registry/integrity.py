"""Where a version's bundle lives, how it is committed to the artefact store, and whether its
files (or, for an external version, its provenance) are what was registered.

On a local store a bundle is the directory ``models/<track>/<version_id>/``, renamed into
place whole, and exists once its ``SHA256SUMS`` does. In a bucket it is one object,
``models/<track>/<version_id>.tar``: the archive a consumer downloads
(:mod:`registry.bundle_archive`: ``SHA256SUMS`` first, then every file it lists), written in
one request only where none is. Every request to a bucket costs a round trip, so a bundle of
many small files is committed, checked and fetched in one each, not one per file; and since a
store writes an object whole or not at all, no reader ever sees half a bundle, an interrupted
upload leaves nothing behind, and a committed bundle is never written over. Verification
checks every file against ``SHA256SUMS``, and ``SHA256SUMS`` against the digest registered.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Any

from registry import bundle_archive
from registry.bundle_cache import cache_bundle
from registry.errors import IntegrityFailure
from registry.ids import validate_slug, validate_version_id
from registry.models import ModelVersion
from registry.provenance import verify_provenance
from registry.storage import (
    ArtefactStore,
    LocalStore,
    StorageUnavailable,
    open_store,
)
from trainer.checksums import (
    SUMS_NAME,
    IntegrityError,
    check_listing,
    parse_sha256sums,
    read_sha256sums,
    sums_digest,
    verified_digest,
)

STAGING_PREFIX = "staging"  # where earlier releases uploaded bundles before copying them
ARCHIVE_SUFFIX = ".tar"  # a bundle in a bucket: models/<track>/<version_id>.tar
CHECKED_ARCHIVES = 4096  # archives (by SHA-256) whose check a process remembers
_checked_archives: dict[str, str] = {}  # archive's SHA-256 -> digest of its SHA256SUMS
_committed_here: dict[tuple[str, str], str] = {}  # (store, archive) -> SHA-256 this process put


def bundle_key(*, track: str, version_id: str) -> str:
    """``models/<track>/<version_id>``, both parts validated first."""
    validate_slug(track, what="track")
    validate_version_id(version_id)
    return f"models/{track}/{version_id}"


def bundle_dir(artefacts_root: Path, *, track: str, version_id: str) -> Path:
    """``<artefacts_root>/models/<track>/<version_id>`` on a local root."""
    return Path(artefacts_root) / bundle_key(track=track, version_id=version_id)


def verify_bundle(path: Path, *, expected_digest: str | None = None,
                  artefacts_root: Path | None = None) -> str:
    """Check every file of a local bundle against SHA256SUMS (and SHA256SUMS against the
    registered digest).

    With ``artefacts_root``, the failure names paths relative to it: an API answer never
    reveals where the server keeps its artefacts."""
    try:
        return verified_digest(path, expected_digest=expected_digest)
    except IntegrityError as exc:
        raise IntegrityFailure(_relative_to(str(exc), artefacts_root)) from None


def verify_stored_bundle(store: ArtefactStore, key: str, *, expected_digest: str | None = None,
                         committed_here: bool = False) -> str:
    """:func:`verify_bundle` for a bundle in any store; returns the digest of SHA256SUMS.

    In a bucket the bundle's archive is read and every file checked, unless this process has
    already checked these very bytes: the object's ETag (one HEAD) still proves the bytes this
    process wrote or read there, whose check it remembers. With ``committed_here`` (registering
    what was just committed), a bundle this process committed, whose archive it has not seen
    change since, is taken on its commit's proof: the store's answer to that create-only write
    was the MD5 of the bytes sent, whose every file had been checked; no request is made."""
    if isinstance(store, LocalStore):
        return verify_bundle(store.local_path(key), expected_digest=expected_digest,
                             artefacts_root=store.root)
    archive = archive_key(key)
    committed = _committed_here.get((store.url, archive))
    if committed_here and committed and committed == store.known_sha256(archive) and (
            digest := _checked_archives.get(committed)):
        return _expected(key, digest, expected_digest)
    try:
        stamp = store.stat(archive).stamp
    except FileNotFoundError:
        raise IntegrityFailure(f"{archive}: missing; the bundle was never committed") from None
    known = store.known_sha256(archive, stamp=stamp)
    digest = _checked_archives.get(known) if known else None
    if digest is None:
        try:
            digest = _check_archive(store.get(archive), name=key)
        except FileNotFoundError:
            raise IntegrityFailure(f"{archive}: missing; the bundle was never committed") from None
    return _expected(key, digest, expected_digest)


def _expected(key: str, digest: str, expected_digest: str | None) -> str:
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityFailure(f"{key}: SHA256SUMS differs from the one registered "
                               "(the bundle was replaced)")
    return digest


def archive_key(key: str) -> str:
    """The one object a bundle is in a bucket: ``models/<track>/<version_id>.tar``."""
    return f"{key}{ARCHIVE_SUFFIX}"


def _check_archive(data: bytes, *, name: str) -> str:
    """Check a bundle's archive (every file against its SHA256SUMS); returns the digest of
    SHA256SUMS, remembered for the archive's SHA-256 (the same bytes always check the same)."""
    files = bundle_archive.read_files(data, name=name)
    raw = files.pop(SUMS_NAME, None)
    if raw is None:
        raise IntegrityFailure(f"{name}: the bundle's archive holds no {SUMS_NAME}")
    try:
        listed = parse_sha256sums(raw.decode("utf-8"), where=f"{name}/{SUMS_NAME}")
        check_listing(name, listed, files, lambda rel: hashlib.sha256(files[rel]).hexdigest())
    except UnicodeDecodeError as exc:
        raise IntegrityFailure(f"{name}/{SUMS_NAME}: not UTF-8 text ({exc.reason})") from None
    except IntegrityError as exc:
        raise IntegrityFailure(str(exc)) from None
    digest = hashlib.sha256(raw).hexdigest()
    _remember_archive(hashlib.sha256(data).hexdigest(), digest)
    return digest


def _remember_archive(archive_sha256: str, digest: str) -> None:
    if len(_checked_archives) >= CHECKED_ARCHIVES:
        _checked_archives.clear()
        _committed_here.clear()
    _checked_archives[archive_sha256] = digest


def commit_bundle(store: ArtefactStore, local_dir: Path, key: str) -> None:
    """Put a sealed local bundle at ``key``: renamed on a local store; in a bucket, packed into
    one archive (each file checked against ``SHA256SUMS`` as it is read) and written in one
    request, only where no bundle is, then checked against what the store says it received
    (its ETag, the MD5 of those bytes), or read back where that proves nothing.

    A bundle already committed at ``key`` is refused (``FileExistsError``), as the rename
    refuses on disk. One object written in one request is never seen half-written; an upload
    cut off leaves nothing, and an archive the store damaged on its way is removed."""
    if isinstance(store, LocalStore):
        final = store.local_path(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(local_dir, final)  # atomic on one filesystem; fails if final appeared meanwhile
        return
    sums = (local_dir / SUMS_NAME).read_bytes()
    try:
        listed = parse_sha256sums(sums.decode("utf-8"), where=str(local_dir / SUMS_NAME))
    except (UnicodeDecodeError, IntegrityError) as exc:
        raise IntegrityFailure(f"{local_dir / SUMS_NAME}: {exc}") from None
    data = bundle_archive.pack(local_dir, sums, listed)
    archive, sha = archive_key(key), hashlib.sha256(data).hexdigest()
    try:
        store.put_new(archive, data)
    except FileExistsError:
        raise FileExistsError(f"{store.location(archive)}: a committed bundle is there "
                              "already") from None
    if store.known_sha256(archive) != sha:  # the store's answer proved nothing: read it back
        stored = hashlib.sha256(store.get(archive)).hexdigest()
        if stored != sha:
            with contextlib.suppress(StorageUnavailable):  # a store down keeps it: unregistered
                store.delete(archive)
            raise IntegrityFailure(f"{store.location(archive)}: damaged on upload (expected "
                                   f"{sha[:12]}…, stored {stored[:12]}…)")
    _remember_archive(sha, hashlib.sha256(sums).hexdigest())
    _committed_here[(store.url, archive)] = sha


def bundle_exists(store: ArtefactStore, key: str) -> bool:
    """A bundle is there once its SHA256SUMS (on disk) or its archive (in a bucket) is."""
    if isinstance(store, LocalStore):
        return store.exists(f"{key}/{SUMS_NAME}")
    return store.exists(archive_key(key))


def remove_bundle(store: ArtefactStore, key: str) -> int:
    """Delete a bundle (its directory, or its archive and anything under its key); returns
    the bytes freed."""
    freed = store.delete_prefix(key)
    if not isinstance(store, LocalStore):
        with contextlib.suppress(FileNotFoundError):
            freed += store.stat(archive_key(key)).size
            store.delete(archive_key(key))
    return freed


def manifest(bundle: Path) -> list[dict[str, Any]]:
    """``[{path, size, sha256}]`` of a verified local bundle, SHA256SUMS first (its digest is
    the bundle's)."""
    listed = read_sha256sums(bundle)
    files = [{"path": SUMS_NAME, "size": (bundle / SUMS_NAME).stat().st_size,
              "sha256": sums_digest(bundle)}]
    files += [{"path": rel, "size": (bundle / rel).stat().st_size, "sha256": digest}
              for rel, digest in listed.items()]
    return files


def fetch_bundle(store: ArtefactStore, key: str, *, expected_digest: str,
                 cache_root: Path | None) -> Path:
    """A local, verified copy of a registered bundle: the bundle itself on a local store; from
    a bucket, ``<cache_root>/<digest>``, its archive downloaded and unpacked once (a verified
    copy is reused)."""
    if isinstance(store, LocalStore):
        return store.local_path(key)
    if cache_root is None:
        raise ValueError(f"a bundle from {store.url} needs a local cache directory")

    def download(partial: Path) -> int:
        try:
            return bundle_archive.unpack(store.iter_chunks(archive_key(key)), partial, name=key)
        except FileNotFoundError:
            raise IntegrityFailure(f"{key}: bundle not found in the artefact store") from None

    return cache_bundle(Path(cache_root), expected_digest, name=key, download=download)[0]


def verified_local_bundle(store: ArtefactStore, key: str, *, expected_digest: str,
                          cache_root: Path) -> Path:
    """A registered bundle on this machine, verified now, to send whole or file by file: the
    bundle itself on a local store; from a bucket, :func:`fetch_bundle`'s copy under
    ``cache_root``."""
    if isinstance(store, LocalStore):
        verify_bundle(store.local_path(key), expected_digest=expected_digest,
                      artefacts_root=store.root)
    return fetch_bundle(store, key, expected_digest=expected_digest, cache_root=cache_root)


def require_kept(version: ModelVersion) -> None:
    """Refuse a version whose bundle ``registry gc`` removed, saying so."""
    if removed := (version.details or {}).get("bundle_removed"):
        raise IntegrityFailure(f"bundle of {version.version_id} removed by gc on {removed}",
                               code="bundle_removed")


def verify_version(artefacts_root: Path | ArtefactStore, version: ModelVersion) -> str:
    """A version's integrity before it serves: its bundle's files for a built-in version; for
    an external one (no bundle), its registered provenance against its fingerprint."""
    if version.kind == "external":
        return verify_provenance(version)
    require_kept(version)
    return verify_stored_bundle(open_store(artefacts_root), version.bundle_path,
                                expected_digest=version.bundle_digest)


def _relative_to(message: str, artefacts_root: Path | None) -> str:
    if artefacts_root is None:
        return message
    for root in {str(Path(artefacts_root).resolve()), str(Path(artefacts_root))}:
        message = message.replace(root.rstrip("/") + "/", "")
    return message

