"""Where a version's bundle lives, how it is committed to the artefact store, and whether its
files (or, for an external version, its provenance) are what was registered.

A bundle is the objects under ``models/<track>/<version_id>/`` and exists once its
``SHA256SUMS`` does. On a local store it is renamed into place whole; in a bucket each file is
uploaded under the bundle's key and checked as it lands, and the bundle committed by writing
``SHA256SUMS`` last, only where none is (a committed bundle is never written over). A failed
upload removes what it wrote; one interrupted before that leaves objects without a
``SHA256SUMS``, which no reader takes for a bundle, the next commit replaces and ``registry gc``
removes. Verification checks every object against ``SHA256SUMS``, and ``SHA256SUMS`` against the
digest registered.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from pathlib import Path
from typing import Any

from registry.bundle_cache import cache_bundle
from registry.errors import IntegrityFailure
from registry.ids import validate_slug, validate_version_id
from registry.models import ModelVersion
from registry.provenance import verify_provenance
from registry.storage import (
    ArtefactStore,
    LocalStore,
    StorageUnavailable,
    StoredObject,
    open_store,
)
from trainer.checksums import (
    SUMS_NAME,
    IntegrityError,
    parse_sha256sums,
    verified_digest,
)

STAGING_PREFIX = "staging"  # where earlier releases uploaded bundles before copying them


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


def verify_stored_bundle(store: ArtefactStore, key: str, *,
                         expected_digest: str | None = None) -> str:
    """:func:`verify_bundle` for a bundle in any store; returns the digest of SHA256SUMS."""
    if isinstance(store, LocalStore):
        return verify_bundle(store.local_path(key), expected_digest=expected_digest,
                             artefacts_root=store.root)
    sums = f"{key}/{SUMS_NAME}"
    try:
        raw = store.get(sums)
    except FileNotFoundError:
        raise IntegrityFailure(f"{sums}: missing; the bundle was never committed") from None
    try:
        listed = parse_sha256sums(raw.decode("utf-8"), where=sums)
    except UnicodeDecodeError as exc:
        raise IntegrityFailure(f"{sums}: not UTF-8 text ({exc.reason})") from None
    except IntegrityError as exc:
        raise IntegrityFailure(str(exc)) from None
    objects = {item.key[len(key) + 1:]: item for item in store.list(key)}
    present = set(objects) - {SUMS_NAME}
    if missing := sorted(set(listed) - present):
        raise IntegrityFailure(f"{key}: listed in {SUMS_NAME} but missing: {missing[0]}")
    if unlisted := sorted(present - set(listed)):
        raise IntegrityFailure(f"{key}: not listed in {SUMS_NAME}: {unlisted[0]}")
    actuals = store.each(lambda rel: _stored_sha256(store, objects[rel]), list(listed))
    for (rel, expected), actual in zip(listed.items(), actuals, strict=True):
        if actual != expected:
            raise IntegrityFailure(f"{key}: checksum mismatch for {rel} "
                                   f"(expected {expected[:12]}…, found {actual[:12]}…)")
    digest = hashlib.sha256(raw).hexdigest()
    if expected_digest is not None and digest != expected_digest:
        raise IntegrityFailure(f"{key}: SHA256SUMS differs from the one registered "
                               "(the bundle was replaced)")
    return digest


def _stored_sha256(store: ArtefactStore, item: StoredObject) -> str:
    """The SHA-256 of a listed object: known without reading it when this process wrote it,
    the store proved receiving those bytes, and the listing shows it is still that object."""
    return (store.written_sha256(item.key, stamp=item.stamp)
            or hashlib.sha256(store.get(item.key)).hexdigest())


def commit_bundle(store: ArtefactStore, local_dir: Path, key: str) -> None:
    """Put a sealed local bundle at ``key``: renamed on a local store; in a bucket, every file
    listed in its ``SHA256SUMS`` uploaded and checked, then ``SHA256SUMS`` written last.

    The caller has verified ``local_dir``; each file is checked again as it is read, and once
    uploaded, against what the store says it received (its ETag, the MD5 of those bytes), or
    read back where that proves nothing. A bundle already committed at ``key`` is refused
    (``FileExistsError``), as the rename refuses on disk."""
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
    there = store.list(key)
    if any(item.key == f"{key}/{SUMS_NAME}" for item in there):
        raise FileExistsError(f"{store.location(key)}: a committed bundle is there already")
    store.delete_many(item.key for item in there)  # leftovers of an interrupted commit
    try:
        store.each(lambda rel: _upload(store, local_dir / rel, f"{key}/{rel}", listed[rel]),
                   list(listed))
        store.put_new(f"{key}/{SUMS_NAME}", sums)
    except FileExistsError:
        raise  # another commit of this bundle won: what is there is its
    except BaseException:
        with contextlib.suppress(StorageUnavailable):  # a store down keeps them: gc's to remove
            store.delete_many(f"{key}/{rel}" for rel in listed)
        raise


def _upload(store: ArtefactStore, path: Path, target: str, expected: str) -> None:
    data = path.read_bytes()
    if (actual := hashlib.sha256(data).hexdigest()) != expected:
        raise IntegrityFailure(f"{path}: changed since its bundle was sealed (expected "
                               f"{expected[:12]}…, found {actual[:12]}…)")
    store.put(target, data)
    if store.written_sha256(target) != expected:  # the store's answer proved nothing: read it
        stored = hashlib.sha256(store.get(target)).hexdigest()
        if stored != expected:
            raise IntegrityFailure(f"{store.location(target)}: damaged on upload (expected "
                                   f"{expected[:12]}…, stored {stored[:12]}…)")


def bundle_exists(store: ArtefactStore, key: str) -> bool:
    """A bundle is there once its SHA256SUMS is (written last)."""
    return store.exists(f"{key}/{SUMS_NAME}")


def bundle_manifest(store: ArtefactStore, key: str, *, expected_digest: str
                    ) -> list[dict[str, Any]]:
    """``[{path, size, sha256}]`` of a registered bundle, SHA256SUMS first, checked against
    the registered digest (the files themselves are checked by whoever downloads them)."""
    try:
        raw = store.get(f"{key}/{SUMS_NAME}")
    except FileNotFoundError:
        raise IntegrityFailure(f"{key}/{SUMS_NAME}: missing") from None
    if hashlib.sha256(raw).hexdigest() != expected_digest:
        raise IntegrityFailure(f"{key}: SHA256SUMS differs from the one registered "
                               "(the bundle was replaced)")
    try:
        listed = parse_sha256sums(raw.decode("utf-8"), where=f"{key}/{SUMS_NAME}")
    except (UnicodeDecodeError, IntegrityError) as exc:
        raise IntegrityFailure(f"{key}/{SUMS_NAME}: {exc}") from None
    sizes = {item.key[len(key) + 1:]: item.size for item in store.list(key)}
    files = [{"path": SUMS_NAME, "size": len(raw), "sha256": expected_digest}]
    for rel, digest in listed.items():
        if rel not in sizes:
            raise IntegrityFailure(f"{key}: listed in {SUMS_NAME} but missing: {rel}")
        files.append({"path": rel, "size": sizes[rel], "sha256": digest})
    return files


def listed_file(store: ArtefactStore, key: str, *, expected_digest: str, path: str
                ) -> dict[str, Any] | None:
    """One entry of :func:`bundle_manifest` (None: not in the bundle). A registered bundle
    never changes, so a bucket's manifest is read once per process and digest (every file
    request would otherwise cost two more round trips)."""
    if isinstance(store, LocalStore):
        files = bundle_manifest(store, key, expected_digest=expected_digest)
    else:
        files = _remembered_manifest(store, key, expected_digest)
    return next((entry for entry in files if entry["path"] == path), None)


@functools.lru_cache(maxsize=256)
def _remembered_manifest(store: ArtefactStore, key: str, digest: str) -> list[dict[str, Any]]:
    return bundle_manifest(store, key, expected_digest=digest)


def fetch_bundle(store: ArtefactStore, key: str, *, expected_digest: str,
                 cache_root: Path | None) -> Path:
    """A local, verified copy of a registered bundle: the bundle itself on a local store; from
    a bucket, ``<cache_root>/<digest>``, downloaded once (a verified copy is reused)."""
    if isinstance(store, LocalStore):
        return store.local_path(key)
    if cache_root is None:
        raise ValueError(f"a bundle from {store.url} needs a local cache directory")

    def download(partial: Path) -> int:
        objects = store.list(key)
        if not objects:
            raise IntegrityFailure(f"{key}: bundle not found in the artefact store")
        def fetch(item: StoredObject) -> None:
            path = partial / item.key[len(key) + 1:]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(store.get(item.key))

        store.each(fetch, objects)
        return sum(item.size for item in objects)

    return cache_bundle(Path(cache_root), expected_digest, name=key, download=download)[0]


def verified_local_bundle(store: ArtefactStore, key: str, *, expected_digest: str,
                          cache_root: Path) -> Path:
    """A registered bundle on this machine, verified now, to send whole: the bundle itself on a
    local store; from a bucket, :func:`fetch_bundle`'s copy under ``cache_root``."""
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

