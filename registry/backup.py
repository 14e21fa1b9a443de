"""Backups: ``registry backup PATH`` and ``registry restore PATH`` for SQLite; a schema check.

SQLite is copied with its online backup API (``sqlite3.Connection.backup``): the copy is one
consistent snapshot even while ``registry serve`` keeps writing, and WAL pages not yet
checkpointed are included. The copy is written beside ``PATH`` under a temporary name,
checked (``PRAGMA integrity_check`` and a known schema revision) and renamed into place, so
``PATH`` is either a whole, checked backup or absent. A restore copies a checked backup into
the configured database through the same API (so a server that has it open sees a consistent
database, never a half-copied file).

PostgreSQL is backed up with its own tools (``pg_dump -Fc``; ``pg_restore``), which take a
consistent snapshot of a live database. After restoring, ``registry migrate`` checks the
schema revision the dump carries: one this Podium does not know (a dump from a newer version)
is refused before anything changes; an older one is upgraded.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from registry import migrations
from registry.errors import AlreadyExists, InvalidInput, PodiumError

PG_DUMP_HINT = ("for PostgreSQL use its own tools, which snapshot a live database: "
                "`pg_dump -Fc -f podium.dump \"$URL\"`; restore with "
                "`pg_restore --clean --if-exists -d \"$URL\" podium.dump`, then `registry migrate`")


class BackupError(PodiumError):
    code, title = "backup_failed", "Backup failed"


@dataclass(frozen=True)
class Snapshot:
    path: Path
    revision: str
    size_bytes: int


def sqlite_path(url: str, *, action: str) -> Path:
    """The file behind a SQLite URL; a clear error for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        raise BackupError(f"`registry {action}` copies SQLite files; {PG_DUMP_HINT}",
                          code="backup_unsupported")
    if parsed.database in (None, "", ":memory:"):
        raise BackupError(f"an in-memory SQLite database cannot be {action}d",
                          code="backup_unsupported")
    return Path(parsed.database)


def known_revision(revision: str | None, *, where: str) -> str:
    """``revision`` if this Podium knows it; else why the database cannot be used."""
    if revision is None:
        raise InvalidInput(f"{where} has no Podium schema (no alembic_version)",
                           code="schema_missing")
    script = ScriptDirectory.from_config(migrations.alembic_config())
    if revision not in {s.revision for s in script.walk_revisions()}:
        raise InvalidInput(f"{where} is at schema revision {revision!r}, which this Podium does "
                           f"not know (its newest is {script.get_current_head()!r}): it was "
                           "written by a newer Podium; use that version", code="schema_unknown")
    return revision


def check_schema(engine: Engine) -> str | None:
    """The database's revision, refusing one this Podium does not know (``None``: empty)."""
    revision = migrations.current_revision(engine)
    return None if revision is None else known_revision(revision, where="the database")


def backup_sqlite(url: str, destination: Path) -> Snapshot:
    """Copy the live SQLite database at ``url`` to ``destination`` (which must not exist)."""
    source = sqlite_path(url, action="backup")
    if not source.is_file():
        raise BackupError(f"no database file at {source}", code="database_missing")
    destination = Path(destination)
    if destination.exists():
        raise AlreadyExists(f"{destination} exists; choose a new path (a backup never "
                            "overwrites a file)", code="backup_exists")
    partial = destination.with_name(f".{destination.name}.partial-{os.getpid()}")
    try:
        _copy(source, partial, single_file=True)
        revision = _checked(partial, where=f"the database {source}")
        os.replace(partial, destination)
    except OSError as exc:
        raise BackupError(f"cannot write {destination}: {exc.strerror or exc}",
                          code="storage_error") from None
    finally:
        partial.unlink(missing_ok=True)
    return Snapshot(destination, revision, destination.stat().st_size)


def restore_sqlite(backup: Path, url: str, *, force: bool = False) -> Snapshot:
    """Copy a checked backup into the SQLite database at ``url``."""
    target = sqlite_path(url, action="restore")
    backup = Path(backup)
    if not backup.is_file():
        raise BackupError(f"no backup file at {backup}", code="backup_missing")
    revision = _checked(backup, where=f"the backup {backup}")
    if target.exists() and target.stat().st_size and not force:
        raise AlreadyExists(f"{target} already holds a database; pass --force to replace its "
                            "contents with the backup", code="database_exists")
    target.parent.mkdir(parents=True, exist_ok=True)
    _copy(backup, target)
    return Snapshot(target, revision, target.stat().st_size)


def _copy(source: Path, destination: Path, *, single_file: bool = False) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=30)
    dst = sqlite3.connect(destination, timeout=30)
    try:
        src.backup(dst)
        if single_file:  # a backup is one self-contained file: no -wal beside it
            dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"cannot copy {source}: {exc}", code="backup_failed") from None
    finally:
        dst.close()
        src.close()


def _checked(path: Path, *, where: str) -> str:
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)) as db:
            verdict = db.execute("PRAGMA integrity_check").fetchone()[0]
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
            revision = (db.execute("SELECT version_num FROM alembic_version").fetchone()
                        if "alembic_version" in tables else None)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{where} is not a readable SQLite database ({exc})",
                          code="backup_invalid") from None
    if verdict != "ok":
        raise BackupError(f"{where} fails SQLite's integrity check: {verdict}",
                          code="backup_invalid")
    return known_revision(revision[0] if revision else None, where=where)
