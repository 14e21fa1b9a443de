"""Faults, for real: a ``registry serve`` killed and restarted, a private PostgreSQL cluster
stopped and started, small filesystems that fill up or turn read-only.

Nothing is mocked. The shared PostgreSQL (``PODIUM_TEST_POSTGRES_URL``) is never stopped: the
outage test runs its own throwaway cluster, made with the ``initdb`` and ``pg_ctl`` on this
machine and removed afterwards.
"""

from __future__ import annotations

import errno
import os
import shutil
import ssl
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Connection, Engine, text
from sqlmodel import col, select

from registry.db import read_session
from registry.models import EVENT_KINDS, AuditEntry, Event, ModelVersion
from registry.testing import RegistryServer, free_port
from tests.api.conftest import auth, client, make_client, tokens  # noqa: F401
from tests.shadow.conftest import trained  # noqa: F401  (two real tiny bundles, once a session)
from tests.zoo.conftest import tiny  # noqa: F401  (examples/tiny.yaml on a migrated database)

# --------------------------------------------------------------------------- a killable server

_TLS = ssl.create_default_context()  # built once: httpx builds one per client otherwise (slow)


def http_client(url: str, token: str | None = None, *, timeout: float = 60.0) -> httpx.Client:
    """A client for ``url``'s API (``/api/v1`` added), with ``token`` as its bearer."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=f"{url}/api/v1", headers=headers, timeout=timeout,
                        verify=_TLS)


ServeFactory = Callable[..., RegistryServer]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """``serve(db_url, artefacts_root, database={...}, **server_settings)``: a started server
    (``database``: settings of its database section besides the URL), stopped at the end
    whatever state it was left in."""
    servers: list[RegistryServer] = []

    def _serve(db_url: str, artefacts_root: Path, *, database: dict[str, Any] | None = None,
               **server: Any) -> RegistryServer:
        workdir = tmp_path / f"server-{len(servers)}"
        workdir.mkdir()
        process = RegistryServer(database_url=db_url, artefacts_root=artefacts_root,
                                 workdir=workdir, config={
                                     "database": database or {},
                                     "server": {"public_reads": False, **server},
                                     "shadow": {"in_serve": False}})
        servers.append(process)
        process.start()
        return process

    yield _serve
    for process in servers:
        process.stop()


# --------------------------------------------------------------------------- a private PostgreSQL


def postgres_bin() -> Path | None:
    """The newest PostgreSQL server binaries on this machine, if any."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


class PostgresCluster:
    """A throwaway cluster (initdb'd into a temporary directory) that a test may stop at will."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="podium-faults-pg-"))
        self.data, self.sockets = self.root / "data", self.root / "sockets"
        self.sockets.mkdir()
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None  # initdb refuses root
        if self.user:
            shutil.chown(self.root, user=self.user)
            shutil.chown(self.sockets, user=self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "-E", "UTF8", "--no-instructions")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bindir / tool), *args]
        if self.user:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise AssertionError(f"{tool} failed ({result.returncode}): {result.stderr[-2000:]}"
                                 f"{self._log_tail()}")

    def _log_tail(self) -> str:
        log = self.root / "postgres.log"
        return "\n" + log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 "
                   f"-c unix_socket_directories={self.sockets}")
        self._run("pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-o", options,
                  "-l", str(self.root / "postgres.log"))

    def stop(self, mode: str = "immediate") -> None:
        """``immediate`` is a crash as far as the database knows: no checkpoint, WAL replay on
        the next start."""
        self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", mode, "-D", str(self.data))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def remove(self) -> None:
        if self.running():
            try:
                self.stop()
            except AssertionError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    """A started private PostgreSQL cluster, removed afterwards."""
    bindir = postgres_bin()
    if bindir is None or not (bindir / "initdb").exists():
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl) on this machine")
    cluster = PostgresCluster(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


def waiting_behind(connection: Connection, holder: int) -> set[int]:
    """PostgreSQL backends waiting, directly or queued behind another waiter, on a lock held by
    backend ``holder``."""
    connection.execute(text("SELECT pg_stat_clear_snapshot()"))  # else: one per transaction
    edges = connection.execute(text("SELECT pid, pg_blocking_pids(pid) FROM pg_stat_activity "
                                    "WHERE wait_event_type = 'Lock'")).all()
    behind: set[int] = set()
    while more := {pid for pid, blockers in edges
                   if pid not in behind and ({holder} | behind) & set(blockers)}:
        behind |= more
    return behind


def backend_alive(connection: Connection, pid: int) -> bool:
    connection.execute(text("SELECT pg_stat_clear_snapshot()"))
    return bool(connection.execute(text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                                   {"p": pid}).scalar_one())


# --------------------------------------------------------------------------- small filesystems


class SmallFilesystem:
    """A tmpfs of ``size`` mounted on ``path``: fill it up, or remount it read-only."""

    def __init__(self, path: Path, size: str) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755",
                                 "tmpfs", str(path)], capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'})"
                        "; the full / read-only filesystem faults need mount permission")

    def fill(self) -> Path:
        """Write until the filesystem says it is full; returns the filler (delete it to free)."""
        filler = self.path / "filler.bin"
        with open(filler, "wb", buffering=0) as handle:
            for size in (1 << 16, 1 << 12, 1):  # big blocks, then the last bytes
                block = b"\0" * size
                try:
                    while handle.write(block) == size:
                        pass
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
        return filler

    def read_only(self) -> None:
        subprocess.run(["mount", "-o", "remount,ro", str(self.path)], check=True)

    def read_write(self) -> None:
        subprocess.run(["mount", "-o", "remount,rw", str(self.path)], check=True)

    def unmount(self) -> None:
        result = subprocess.run(["umount", str(self.path)], capture_output=True)
        if result.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def small_filesystem() -> Iterator[Callable[[Path, str], SmallFilesystem]]:
    """``small_filesystem(path, size)``: a tmpfs mounted on ``path``, unmounted afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    mounted: list[SmallFilesystem] = []

    def _mount(path: Path, size: str) -> SmallFilesystem:
        mounted.append(SmallFilesystem(path, size))
        return mounted[-1]

    yield _mount
    for filesystem in reversed(mounted):
        filesystem.unmount()


# --------------------------------------------------------------------------- the invariants


def replay_audit(entries: list[AuditEntry]) -> dict[str, str]:
    """Every version's state, rebuilt from the audit log alone (independently of the store)."""
    state: dict[str, str] = {}
    for entry in entries:
        before = state.get(entry.version_id)
        assert before == entry.from_state, (entry.id, entry.action, before, entry.from_state)
        if entry.displaced_version_id is not None:
            assert state.get(entry.displaced_version_id) == "champion", entry.id
            state[entry.displaced_version_id] = "retired"
        state[entry.version_id] = entry.to_state
    return state


def assert_consistent(engine: Engine, track: str) -> str:
    """At most one champion; the audit log, replayed, gives every version's state; the last
    promotion or rollback names the champion; one outbox event per audit entry, agreeing with
    it. Returns the champion's id ("" when there is none)."""
    with read_session(engine) as session:
        states = {v.version_id: v.state for v in session.exec(
            select(ModelVersion).where(ModelVersion.track == track))}
        audit = list(session.exec(select(AuditEntry).where(AuditEntry.track == track)
                                  .order_by(col(AuditEntry.id))))
        events = list(session.exec(select(Event).where(Event.track == track)
                                   .order_by(col(Event.id))))
    champions = [v for v, s in states.items() if s == "champion"]
    assert len(champions) <= 1, champions
    assert replay_audit(audit) == states
    crowning = [a for a in audit if a.action in ("promote", "rollback")]
    assert (crowning[-1].version_id if crowning else "") == (champions[0] if champions else "")
    assert [(e.audit_id, e.kind, e.version_id, e.payload["to_state"]) for e in events] == [
        (a.id, EVENT_KINDS[a.action], a.version_id, a.to_state) for a in audit]
    return champions[0] if champions else ""
