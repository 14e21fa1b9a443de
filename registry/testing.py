"""Stand-ins for testing code that talks to Podium: sealed bundles and a real server process.

- ``write_stand_in_bundle`` / ``register_stand_in``: a version whose bundle passes every
  integrity check (real files, a real ``SHA256SUMS``) but holds no trained model, for exercising
  the lifecycle, the API and consumers without training one. ``trainer.load_model`` cannot load
  it.
- ``RegistryServer``: ``registry serve`` (uvicorn) as a subprocess on a free loopback port,
  started, waited for, SIGKILLed and started again at will.
- ``LoopbackS3``: moto's S3 server on loopback (needs the ``dev`` extra), counting the requests
  it answers, and able to damage uploads on their way in.

Podium's own tests and benchmarks use both; so may the tests of a team's consumers.
"""

from __future__ import annotations

import collections
import datetime as dt
import hashlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml
from sqlalchemy import Engine

from registry import bundle_archive, promotion, store
from registry.db import write_session
from registry.ids import build_version_id
from registry.integrity import archive_key, bundle_key, commit_bundle
from registry.storage import ArtefactStore, LocalStore, open_store
from trainer.checksums import write_sha256sums

DEFAULT_TRACK = "equities-daily"
DEFAULT_CUTOFF = dt.date(2025, 6, 30)
REGISTRY_BIN = Path(sys.executable).parent / "registry"


# --------------------------------------------------------------------------- stand-in bundles


def write_stand_in_bundle(artefacts_root: Path | ArtefactStore, version_id: str, *,
                          track: str = DEFAULT_TRACK) -> Path | str:
    """Seal a bundle for ``version_id`` under ``artefacts_root`` (a directory, or a store it
    is committed to): a checkpoint file whose bytes follow from the id, ``metadata.json`` and
    ``SHA256SUMS``. Rewriting it in a directory gives the same bytes (a bucket refuses to
    commit over a committed bundle). Returns its path, or its URL."""
    artefacts = open_store(artefacts_root)
    key = bundle_key(track=track, version_id=version_id)
    if isinstance(artefacts, LocalStore):
        return _seal_stand_in(artefacts.local_path(key), version_id)
    with tempfile.TemporaryDirectory(prefix="podium-stand-in-") as work:
        commit_bundle(artefacts, _seal_stand_in(Path(work) / version_id, version_id), key)
    return artefacts.location(key)


def _seal_stand_in(bundle: Path, version_id: str) -> Path:
    (bundle / "checkpoint").mkdir(parents=True, exist_ok=True)
    (bundle / "checkpoint" / "weights.bin").write_bytes(
        hashlib.sha256(version_id.encode()).digest() * 8)
    (bundle / "metadata.json").write_text(f'{{"version_id": "{version_id}"}}\n')
    write_sha256sums(bundle)
    return bundle


def stand_in_version(artefacts_root: Path | ArtefactStore, label: str = "v1-linear", *,
                     track: str = DEFAULT_TRACK, cutoff: dt.date = DEFAULT_CUTOFF,
                     fingerprint: str | None = None, seed: str | None = None) -> tuple[str, str]:
    """A sealed stand-in bundle under a fresh version id; returns ``(version_id, fingerprint)``.

    The fingerprint is ``fingerprint``, else the SHA-256 of ``seed``, else random."""
    fingerprint = fingerprint or hashlib.sha256((seed or uuid.uuid4().hex).encode()).hexdigest()
    version_id = build_version_id(label, cutoff, fingerprint)
    write_stand_in_bundle(artefacts_root, version_id, track=track)
    return version_id, fingerprint


def register_stand_in(engine: Engine, artefacts_root: Path | ArtefactStore,
                      label: str = "v1-linear", *, track: str = DEFAULT_TRACK, actor: str = "test",
                      champion: bool = False, **identity: Any) -> str:
    """A stand-in bundle registered as a challenger (and, if ``champion``, promoted by force
    with no gate); returns its version id. ``identity``: ``stand_in_version``'s keywords."""
    version_id, fingerprint = stand_in_version(artefacts_root, label, track=track, **identity)
    with write_session(engine) as session:
        store.register_version(session, track=track, version_id=version_id,
                               fingerprint=fingerprint, artefacts_root=artefacts_root,
                               actor=actor)
    if champion:
        with write_session(engine) as session:
            promotion.promote_version(session, version_id=version_id, actor=actor,
                                      reason="first champion", gate=None, force=True,
                                      artefacts_root=artefacts_root)
    return version_id


def bundle_file(artefacts: ArtefactStore, key: str, rel: str) -> bytes:
    """One file of the bundle committed at ``key``, straight from the store."""
    if isinstance(artefacts, LocalStore):
        return artefacts.get(f"{key}/{rel}")
    files = bundle_archive.read_files(artefacts.get(archive_key(key)), name=key)
    return files[rel]


def tamper_with_bundle(artefacts: ArtefactStore, key: str, rel: str, data: bytes | None) -> None:
    """Replace one file of the bundle committed at ``key`` (remove it, with None) behind
    Podium's back, as a person or a fault with access to the store would: the file on disk, or
    the bundle's archive in a bucket rewritten around it (its SHA256SUMS left as it was)."""
    if isinstance(artefacts, LocalStore):
        if data is None:
            artefacts.delete(f"{key}/{rel}")
        else:
            artefacts.put(f"{key}/{rel}", data)
        return
    files = bundle_archive.read_files(artefacts.get(archive_key(key)), name=key)
    if data is None:
        del files[rel]
    else:
        files[rel] = data
    artefacts.put(archive_key(key), bundle_archive.pack_files(files))


# --------------------------------------------------------------------------- a server process


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(process: subprocess.Popen, url: str, *, timeout: float = 60.0,
                         any_status: bool = False, log: Path | None = None) -> float:
    """Poll ``url`` until it answers 200 (any status with ``any_status``); returns the seconds
    waited. Raises ``RuntimeError`` when ``process`` exits first or ``timeout`` passes."""
    started = time.perf_counter()
    tail = (lambda: "\n" + log.read_text(errors="replace")[-2000:]) if log else (lambda: "")
    with httpx.Client(timeout=1.0) as http:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}) before answering "
                                   f"{url}{tail()}")
            try:
                status = http.get(url).status_code
                if status == 200 or any_status:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            if time.perf_counter() - started > timeout:
                raise RuntimeError(f"{url} did not answer within {timeout:g} s{tail()}")
            time.sleep(0.05)


class RegistryServer:
    """``registry serve`` on a fixed loopback port, on ``database_url`` and ``artefacts_root``,
    with ``config`` written as its configuration file in ``workdir`` (its log goes there too).

    ``start`` waits until ``/api/v1/health`` answers; ``kill`` is a SIGKILL (no shutdown
    handlers); ``stop`` a SIGTERM, then a SIGKILL after 10 s. A context manager starts and stops.
    """

    def __init__(self, *, database_url: str, artefacts_root: Path, workdir: Path,
                 config: dict[str, Any] | None = None, log_level: str = "warning") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workdir = workdir
        self.config = workdir / "podium.yaml"
        self.config.write_text(yaml.safe_dump(config or {}))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
        self.env.update(PODIUM_DATABASE_URL=database_url,
                        PODIUM_ARTEFACTS_ROOT=str(artefacts_root), PODIUM_CONFIG=str(self.config))
        self.command = [str(REGISTRY_BIN), "serve", "--port", str(self.port), "--log-level",
                        log_level]
        self.log_path = workdir / "server.log"
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self, *, timeout: float = 60.0, healthy: bool = False) -> float:
        """Start the server (on the same port each time) and wait until ``/api/v1/health``
        answers (with a 200 if ``healthy``); returns the seconds that took."""
        assert self.process is None or self.process.poll() is not None, "already running"
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=self.workdir)
        try:
            return wait_until_answering(self.process, f"{self.url}/api/v1/health",
                                        timeout=timeout, any_status=not healthy,
                                        log=self.log_path)
        except RuntimeError:
            self.stop()
            raise

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no rollbacks, no flushes."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> RegistryServer:
        self.start(healthy=True)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.stop()


# --------------------------------------------------------------------------- an S3 server


class LoopbackS3:
    """moto's S3 server in this process, on a free loopback port, over real HTTP.

    ``counts`` tallies the requests answered by kind: ``PUT``, ``COPY``, ``GET``, ``HEAD``,
    ``LIST``, ``DELETE`` (one per request, bulk or not); :meth:`take` returns and resets it.
    ``damage(path, body)``, when given, returns what an upload to ``/bucket/key`` stores instead
    of ``body``, as a faulty network or disk would (the client is not told)."""

    def __init__(self, damage: Callable[[str, bytes], bytes] | None = None) -> None:
        self.damage = damage
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()
        self._server: Any = None
        self.endpoint = ""

    def start(self) -> LoopbackS3:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )
        from werkzeug.serving import make_server

        app = DomainDispatcherApplication(create_backend_app)

        def counted(environ: dict[str, Any], start_response: Any) -> Any:
            kind = _request_kind(environ)
            if kind == "PUT" and self.damage is not None:
                body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
                body = self.damage(environ["PATH_INFO"], body)
                environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))
            with self._lock:
                self.counts[kind] += 1
            return app(environ, start_response)

        self._server = make_server("127.0.0.1", 0, counted, threaded=True,
                                   request_handler=MotoRequestHandler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="loopback-s3").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def make_bucket(self, name: str | None = None) -> str:
        """A new, empty bucket; returns its name."""
        name = name or f"podium-{uuid.uuid4().hex[:12]}"
        httpx.put(f"{self.endpoint}/{name}").raise_for_status()
        return name

    def take(self) -> collections.Counter[str]:
        """The requests counted since the last call (or the start)."""
        with self._lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts

    def __enter__(self) -> LoopbackS3:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def _request_kind(environ: dict[str, Any]) -> str:
    method, query = environ["REQUEST_METHOD"], environ.get("QUERY_STRING", "")
    if method == "PUT" and environ.get("HTTP_X_AMZ_COPY_SOURCE"):
        return "COPY"
    if method == "GET" and "list-type" in query:
        return "LIST"
    if method == "POST" and "delete" in query:
        return "DELETE"
    return method
