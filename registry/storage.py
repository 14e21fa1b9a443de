"""Where artefacts are kept: a local directory (the default) or an S3 bucket, behind one interface.

Bundles, prediction and submission Parquet go through an :class:`ArtefactStore`, addressed by
POSIX keys relative to the artefacts root (``models/<track>/<version_id>.tar``,
``shadow/predictions/...``). :class:`LocalStore` is a directory, as Podium always used;
:class:`ObjectStore` is an ``s3://bucket/prefix`` through `obstore
<https://developmentseed.org/obstore/>`_ (a small Rust client, no boto: see
docs/deployment.md for why). Endpoint, region and credentials come from the standard
``AWS_*`` environment variables or the ``object_store`` configuration keys; a message names the
store by its URL only, never a credential.

A store failing to answer (unreachable, wrong credentials, no such bucket) is
:class:`StorageUnavailable`; a missing object is ``FileNotFoundError``, as on disk.

The interface and both stores share this module (a little over 400 lines): they change
together, and each method of one is read beside the other's.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
import re
import secrets
import shutil
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from registry.errors import PodiumError

SCHEMES = ("s3://",)
REMEMBERED_OBJECTS = 4096  # objects whose bytes a store remembers (see ObjectStore.known_sha256)


class StorageUnavailable(PodiumError):
    code, status, title = "storage_unavailable", 503, "Artefact store unavailable"


@dataclass(frozen=True)
class StoredObject:
    key: str  # relative to the store's root
    size: int
    stamp: str  # changes whenever the object does (an ETag, or inode, size and mtime)
    modified: dt.datetime  # UTC


def is_store_url(value: str | os.PathLike[str]) -> bool:
    return isinstance(value, str) and value.startswith(SCHEMES)


class ArtefactStore:
    """Objects under POSIX keys. ``url`` names the store in messages (no credentials)."""

    url: str

    def put(self, key: str, data: bytes | memoryview) -> None:
        """Write a whole object at once: a reader sees the old object or the new, never half."""
        raise NotImplementedError

    def put_new(self, key: str, data: bytes | memoryview) -> None:
        """:meth:`put`, only if no object is at ``key``: ``FileExistsError`` otherwise, and
        of two writers racing, one wins."""
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def known_sha256(self, key: str, *, stamp: str | None = None) -> str | None:
        """The SHA-256 of what this process last wrote or read whole at ``key``, when the
        store's answer proved those were its bytes (else None: read the object to know). With
        ``stamp`` (a listing's or :meth:`stat`'s), only while the object is still that one."""
        return None

    def stat(self, key: str) -> StoredObject:
        """One object's size and stamp (``FileNotFoundError`` when there is none)."""
        raise NotImplementedError

    def put_table(self, key: str, table: Any, **options: Any) -> None:
        """Write an Arrow table as one whole Parquet object (``options`` for the writer)."""
        import pyarrow as pa  # not at import: the server starts without Arrow
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, **options)
        self.put(key, memoryview(sink.getvalue()))

    def list(self, prefix: str) -> list[StoredObject]:
        """Every object under ``prefix/`` (recursively), sorted by key."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove one object; a missing one is not an error."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def local_path(self, key: str) -> Path | None:
        """The file behind ``key`` when the store is a local directory, else None."""
        return None

    def location(self, key: str) -> str:
        """Where ``key`` is, for a person: a path, or a URL."""
        return f"{self.url}/{_clean_key(key)}"

    def parquet_source(self, key: str) -> Any:
        """What ``pyarrow.parquet.read_table`` reads ``key`` from."""
        return pa.BufferReader(self.get(key))

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        """An object's bytes in pieces, for streaming it to a client."""
        yield self.get(key)

    def delete_many(self, keys: Iterable[str]) -> None:
        """Remove these objects (missing ones are not an error)."""
        for key in keys:
            self.delete(key)

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object under ``prefix/``; returns the bytes freed."""
        items = self.list(prefix)
        self.delete_many(item.key for item in items)
        return sum(item.size for item in items)


def _clean_key(key: str) -> str:
    parts = key.strip("/").split("/")
    if not key or any(part in ("", ".", "..") for part in parts) or "\0" in key:
        raise ValueError(f"not a valid artefact key: {key!r}")
    return "/".join(parts)


class LocalStore(ArtefactStore):
    """A directory: writes go through a temporary sibling and an atomic rename."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.url = str(self.root)

    def local_path(self, key: str) -> Path:
        return self.root / _clean_key(key)

    def location(self, key: str) -> str:
        return str(self.local_path(key))

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._write(key, lambda tmp: tmp.write_bytes(data), os.replace)

    def put_new(self, key: str, data: bytes | memoryview) -> None:
        # a hard link fails where a file already is
        self._write(key, lambda tmp: tmp.write_bytes(data), os.link)

    def put_table(self, key: str, table: Any, **options: Any) -> None:
        import pyarrow.parquet as pq

        self._write(key, lambda tmp: pq.write_table(table, tmp, **options), os.replace)

    def _write(self, key: str, fill: Callable[[Path], object],
               place: Callable[[Path, Path], None]) -> None:
        """``fill`` a temporary sibling of the key's file, then ``place`` it there."""
        target = self.local_path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fill(tmp)
            place(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)  # a full disk leaves no half file behind

    def get(self, key: str) -> bytes:
        return self.local_path(key).read_bytes()

    def list(self, prefix: str) -> list[StoredObject]:
        base = self.local_path(prefix)
        if not base.is_dir():
            return []
        found = [self._stored(Path(directory) / name)
                 for directory, _, names in os.walk(base) for name in names]
        return sorted(found, key=lambda item: item.key)

    def stat(self, key: str) -> StoredObject:
        return self._stored(self.local_path(key))

    def _stored(self, path: Path) -> StoredObject:
        info = path.stat()
        return StoredObject(path.relative_to(self.root).as_posix(), info.st_size,
                            f"{info.st_ino}-{info.st_size}-{info.st_mtime_ns}",
                            dt.datetime.fromtimestamp(info.st_mtime, dt.UTC))

    def delete(self, key: str) -> None:
        self.local_path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        freed = sum(item.size for item in self.list(prefix))
        shutil.rmtree(self.local_path(prefix), ignore_errors=True)
        return freed

    def exists(self, key: str) -> bool:
        return self.local_path(key).is_file()

    def parquet_source(self, key: str) -> Any:
        return str(self.local_path(key))


class ObjectStore(ArtefactStore):
    """An S3 bucket (or an S3-compatible store) through obstore: every request is a round
    trip, so a bundle is one object (:mod:`registry.integrity`).

    Every object goes up in one request, whose answer carries its ETag: S3 (and MinIO, Ceph,
    moto) make it the MD5 of the bytes received. When it is the MD5 of the bytes sent (or, on
    a read, of the bytes read), the store remembers their SHA-256 (:meth:`known_sha256`), so
    checking that an object is still what was written or verified costs its ETag (a listing or
    a HEAD), not the object read again. A store whose ETags are not MD5s (SSE-KMS) proves
    nothing this way, and is read."""

    def __init__(self, url: str, *, options: dict[str, str] | None = None,
                 timeout_seconds: float = 30.0, role: str = "artefact store") -> None:
        from obstore.store import S3Store

        self.url, self.role = url.rstrip("/"), role  # role: what messages call it
        self._secrets = [value for key, value in (options or {}).items()  # "" hides nothing
                         if value and ("secret" in key or "token" in key)]
        self._secrets += [os.environ[name] for name in ("AWS_SECRET_ACCESS_KEY",
                          "AWS_SESSION_TOKEN") if os.environ.get(name)]
        allow_http = (options or {}).get("endpoint", os.environ.get("AWS_ENDPOINT_URL", "")
                                         ).startswith("http://")
        try:
            self._store = S3Store.from_url(
                self.url, config=dict(options or {}),
                client_options={"allow_http": allow_http, "connect_timeout": "5s",
                                "timeout": f"{max(int(timeout_seconds), 1)}s"},
                retry_config={"max_retries": 2, "retry_timeout": dt.timedelta(
                    seconds=timeout_seconds), "backoff": {
                    "init_backoff": dt.timedelta(milliseconds=100),
                    "max_backoff": dt.timedelta(seconds=2), "base": 2}})
        except Exception as exc:  # noqa: BLE001 (obstore raises its own configuration errors)
            raise StorageUnavailable(f"{self.role} {self.url}: {self._reason(exc)}",
                                     code="storage_misconfigured") from None
        self._known: OrderedDict[str, tuple[str, str]] = OrderedDict()  # key: ETag, SHA-256
        self._known_lock = threading.Lock()

    def _reason(self, exc: BaseException) -> str:
        text = " ".join(str(exc).split())
        for secret in self._secrets:
            text = text.replace(secret, "***")
        text = re.sub(r"(?i)(X-Amz-(?:Signature|Credential|Security-Token)=)[^&\s]+", r"\1***",
                      text)
        return text if len(text) <= 300 else text[:297] + "…"

    def _call(self, what: str, key: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from obstore.exceptions import AlreadyExistsError

        try:
            return fn(self._store, *args, **kwargs)
        except AlreadyExistsError:
            raise
        except FileNotFoundError as exc:
            if "NoSuchBucket" in str(exc):
                raise StorageUnavailable(f"{self.role} {self.url} cannot {what} {key}: "
                                         "no such bucket") from None
            raise FileNotFoundError(f"{self.url}/{key}: not found") from None
        except Exception as exc:  # noqa: BLE001 (network, credentials, bucket: all mean the same)
            raise StorageUnavailable(f"{self.role} {self.url} cannot {what} {key}: "
                                     f"{self._reason(exc)}") from None

    def put(self, key: str, data: bytes | memoryview) -> None:
        self._put(key, data, "overwrite")

    def put_new(self, key: str, data: bytes | memoryview) -> None:
        self._put(key, data, "create")  # If-None-Match: *

    def _put(self, key: str, data: bytes | memoryview, mode: str) -> None:
        import obstore
        from obstore.exceptions import AlreadyExistsError

        key = _clean_key(key)
        data = bytes(data) if isinstance(data, memoryview) else data
        with self._known_lock:
            self._known.pop(key, None)  # a failed write may still have replaced it
        try:  # one request, never multipart: its ETag is then the MD5 of the object
            result = self._call("write", key, obstore.put, key, data, mode=mode,
                                use_multipart=False)
        except AlreadyExistsError:
            raise FileExistsError(f"{self.url}/{key}: already exists") from None
        self._remember(key, (result or {}).get("e_tag"), data)

    def _remember(self, key: str, etag: str | None, data: bytes) -> None:
        """Remember the SHA-256 of ``data`` as ``key``'s when its ETag proves those bytes."""
        etag = (etag or "").strip('"')
        if etag == hashlib.md5(data, usedforsecurity=False).hexdigest():
            sha = hashlib.sha256(data).hexdigest()
            with self._known_lock:
                self._known[key] = (etag, sha)
                if len(self._known) > REMEMBERED_OBJECTS:
                    self._known.popitem(last=False)

    def known_sha256(self, key: str, *, stamp: str | None = None) -> str | None:
        with self._known_lock:
            etag, sha = self._known.get(_clean_key(key), (None, None))
        if etag is None or (stamp is not None and stamp.strip('"') != etag):
            return None
        return sha

    def get(self, key: str) -> bytes:
        import obstore

        key = _clean_key(key)

        def read(store: Any) -> tuple[bytes, str | None]:
            result = obstore.get(store, key)
            return bytes(result.bytes()), result.meta["e_tag"]

        data, etag = self._call("read", key, read)
        self._remember(key, etag, data)
        return data

    def stat(self, key: str) -> StoredObject:
        import obstore

        key = _clean_key(key)
        try:
            meta = self._call("read", key, obstore.head, key)
        except FileNotFoundError:  # a HEAD's 404 has no body to tell a missing bucket: a GET's has
            meta = self._call("read", key, lambda store: obstore.get(store, key).meta)
        return StoredObject(meta["path"], meta["size"], meta["e_tag"] or
                            meta["last_modified"].isoformat(), meta["last_modified"])

    def iter_chunks(self, key: str) -> Iterator[bytes]:
        import obstore

        key = _clean_key(key)
        result = self._call("read", key, obstore.get, key)
        for chunk in result.stream(min_chunk_size=1 << 20):
            yield bytes(chunk)

    def list(self, prefix: str) -> list[StoredObject]:
        import obstore

        prefix = _clean_key(prefix) + "/"

        def listing(store: Any) -> list[StoredObject]:
            return [StoredObject(meta["path"], meta["size"], meta["e_tag"] or
                                 meta["last_modified"].isoformat(), meta["last_modified"])
                    for batch in obstore.list(store, prefix) for meta in batch]

        return sorted(self._call("list", prefix, listing), key=lambda item: item.key)

    def delete(self, key: str) -> None:
        import obstore

        key = _clean_key(key)
        try:
            self._call("delete", key, obstore.delete, key)
        except FileNotFoundError:
            pass

    def delete_many(self, keys: Iterable[str]) -> None:
        import obstore

        keys = [_clean_key(key) for key in keys]
        if keys:  # S3's DeleteObjects: up to 1 000 objects a request
            self._call("delete", keys[0], obstore.delete, keys)

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except FileNotFoundError:
            return False
        return True


def store_options(config: Any) -> dict[str, str]:
    """obstore's S3 settings from the ``object_store`` section (unset keys: the environment)."""
    options: dict[str, str] = {}
    for key in ("endpoint", "region", "access_key_id"):
        value = getattr(config, key)
        if value:
            options[key] = value
    if config.secret_access_key is not None:
        options["secret_access_key"] = config.secret_access_key.get_secret_value()
    return options


@functools.lru_cache(maxsize=8)
def _cached_object_store(url: str, options: tuple[tuple[str, str], ...],
                         timeout_seconds: float, role: str) -> ObjectStore:
    return ObjectStore(url, options=dict(options), timeout_seconds=timeout_seconds, role=role)


def open_store(root: str | os.PathLike[str] | ArtefactStore, *, settings: Any = None,
               role: str = "artefact store") -> ArtefactStore:
    """The store behind ``root``: itself if already a store, an :class:`ObjectStore` for an
    ``s3://`` URL (one client per URL, settings and role in a process), else a
    :class:`LocalStore`. ``settings`` is the configuration's ``object_store`` section (also
    what a panel in a bucket is read with); ``role`` names the store in messages."""
    if isinstance(root, ArtefactStore):
        return root
    if is_store_url(root):
        options = store_options(settings) if settings is not None else {}
        timeout = settings.timeout_seconds if settings is not None else 30.0
        return _cached_object_store(str(root), tuple(sorted(options.items())), timeout, role)
    return LocalStore(root)


def store_environment(settings: Any) -> dict[str, str]:
    """The ``object_store`` keys set in the configuration as the ``AWS_*`` variables, for a
    child process (the trainer) that reads a panel from the bucket without the configuration."""
    names = {"endpoint": "AWS_ENDPOINT_URL", "region": "AWS_REGION",
             "access_key_id": "AWS_ACCESS_KEY_ID", "secret_access_key": "AWS_SECRET_ACCESS_KEY"}
    return {names[key]: value for key, value in store_options(settings).items()}


def artefact_store(config: Any) -> ArtefactStore:
    """The store a loaded :class:`~registry.config.PodiumConfig` keeps its artefacts in."""
    url = config.object_store.url
    return open_store(url if url else config.artefacts_root, settings=config.object_store)
