"""``registry backup`` / ``registry restore``: a consistent copy while writes go on; the schema
revision checked before a restored database is used."""

from __future__ import annotations

import sqlite3
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from registry import migrations, promotion
from registry.backup import BackupError, backup_sqlite, restore_sqlite
from registry.db import make_engine, read_session, write_session
from registry.errors import AlreadyExists, InvalidInput
from registry.models import ShadowScore, Track
from tests.conftest import BACKENDS, POSTGRES_URL
from tests.faults.conftest import assert_consistent
from tests.registry.test_cli import cli
from tests.registry.test_promotion import _settle

TRACK = "equities-daily"
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def _config(tmp_path: Path, name: str, url: str) -> Path:
    path = tmp_path / name
    path.write_text(f"database:\n  url: {url}\nartefacts_root: artefacts\n")
    return path


@SQLITE_ONLY
def test_a_backup_taken_while_promotions_run_is_consistent_and_restores(
        db_url: str, engine: Engine, tmp_path: Path, artefacts_root: Path,
        register: Callable[..., str]) -> None:
    versions = [register(f"v{i}-linear") for i in range(12)]
    stop = threading.Event()

    def promote_in_turn() -> None:  # a steady stream of swaps: audit, events, states
        i = 0
        while not stop.is_set():
            with write_session(engine) as session:
                promotion.promote_version(session, version_id=versions[i % len(versions)],
                                      actor="bot", reason="rotate", force=True, gate=None,
                                      artefacts_root=artefacts_root)
            i += 1
            if i == len(versions) - 1:
                return

    writer = threading.Thread(target=promote_in_turn)
    writer.start()
    copies = []
    try:
        for n in range(3):
            copy = tmp_path / f"backup-{n}.db"
            result = cli("backup", str(copy), "--config",
                         str(_config(tmp_path, "podium.yaml", db_url)), cwd=tmp_path)
            assert result.returncode == 0, result.stderr
            assert f"to {copy} (schema {migrations.head_revision()}," in result.stdout
            copies.append(copy)
    finally:
        stop.set()
        writer.join()
    for copy in copies:
        copied = make_engine(f"sqlite:///{copy}")
        try:
            assert_consistent(copied, TRACK)
        finally:
            copied.dispose()
    restored_url = f"sqlite:///{tmp_path / 'restored' / 'podium.db'}"
    restored_config = _config(tmp_path, "restored.yaml", restored_url)
    result = cli("restore", str(copies[-1]), "--config", str(restored_config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    listing = cli("versions", "--config", str(restored_config), cwd=tmp_path)
    assert listing.returncode == 0 and "12 version(s)" in listing.stdout, listing.stderr
    again = cli("restore", str(copies[-1]), "--config", str(restored_config), cwd=tmp_path)
    assert again.returncode == 1
    assert "already holds a database; pass --force" in again.stderr


@SQLITE_ONLY
def test_a_backup_never_overwrites_and_a_damaged_one_is_refused(
        db_url: str, engine: Engine, tmp_path: Path) -> None:
    existing = tmp_path / "taken.db"
    existing.write_bytes(b"keep me")
    with pytest.raises(AlreadyExists, match="exists; choose a new path") as err:
        backup_sqlite(db_url, existing)
    assert err.value.code == "backup_exists" and existing.read_bytes() == b"keep me"
    copy = backup_sqlite(db_url, tmp_path / "good.db").path
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE alembic_version SET version_num = '9999'")
    target = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(InvalidInput, match="schema revision '9999', which this Podium does "
                                           "not know") as err:
        restore_sqlite(copy, target)
    assert err.value.code == "schema_unknown" and not (tmp_path / "new.db").exists()
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupError, match="not a readable SQLite database") as err:
        restore_sqlite(garbage, target)
    assert err.value.code == "backup_invalid"
    assert not list(tmp_path.glob(".*.partial-*"))


def test_postgres_is_pointed_at_pg_dump_and_a_newer_schema_is_refused(
        db_url: str, engine: Engine, tmp_path: Path) -> None:
    config = _config(tmp_path, "podium.yaml", db_url)
    result = cli("backup", str(tmp_path / "b.db"), "--config", str(config), cwd=tmp_path)
    if engine.dialect.name == "postgresql":
        assert result.returncode == 1
        assert "pg_dump -Fc" in result.stderr and "registry migrate" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
    with engine.begin() as connection:  # what restoring a newer Podium's dump leaves
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    migrate = cli("migrate", "--config", str(config), cwd=tmp_path)
    assert migrate.returncode == 1
    assert migrate.stderr.startswith("error: the database is at schema revision '9999', "
                                     "which this Podium does not know")
    with read_session(engine) as session:
        assert session.exec(text("SELECT version_num FROM alembic_version")).one()[0] == "9999"


POSTGRES_ONLY = pytest.mark.parametrize("db_url", [BACKENDS[1]], indirect=True)


def _pg(*command: str, url: str) -> None:
    """Run a PostgreSQL client tool, ``URL`` in its arguments standing for ``url``'s libpq
    form (the database, without the Podium schema's search path)."""
    libpq = make_url(url).set(drivername="postgresql", query={})
    plain = libpq.render_as_string(hide_password=False)
    done = subprocess.run([plain if arg == "URL" else arg for arg in command],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@POSTGRES_ONLY
def test_a_pg_dump_restores_into_a_fresh_schema_that_podium_accepts_or_refuses_if_newer(
        db_url: str, engine: Engine, tmp_path: Path, artefacts_root: Path,
        register: Callable[..., str]) -> None:
    versions = [register(f"v{i}-linear") for i in range(3)]
    with write_session(engine) as session:
        promotion.promote_version(session, version_id=versions[0], actor="ops", reason="first",
                                  force=True, gate=None, artefacts_root=artefacts_root)
    _settle(engine, versions[1], np.full(10, 0.001))
    with engine.connect() as connection:
        schema = connection.execute(text("SELECT current_schema()")).scalar_one()
    engine.dispose()
    # As the docs say: pg_dump -Fc, then pg_restore --clean --if-exists, then registry migrate.
    good, newer = tmp_path / "podium.dump", tmp_path / "newer.dump"
    _pg("pg_dump", "-Fc", "-n", schema, "-f", str(good), "URL", url=db_url)
    with engine.begin() as connection:  # what a newer Podium's database would carry
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    _pg("pg_dump", "-Fc", "-n", schema, "-f", str(newer), "URL", url=db_url)
    engine.dispose()
    admin = create_engine(POSTGRES_URL)
    config = _config(tmp_path, "podium.yaml", db_url)
    try:
        with admin.begin() as connection:  # the dumped schema moves aside: restore afresh
            connection.execute(text(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_src"'))
        _pg("pg_restore", "--clean", "--if-exists", "-d", "URL", str(good), url=db_url)
        migrate = cli("migrate", "--config", str(config), cwd=tmp_path)
        assert migrate.returncode == 0, migrate.stderr
        listing = cli("versions", "--config", str(config), cwd=tmp_path)
        assert listing.returncode == 0 and "3 version(s)" in listing.stdout, listing.stderr
        assert_consistent(engine, TRACK)
        with read_session(engine) as session:  # the rows and the triggers came back
            assert len(session.exec(select(ShadowScore)).all()) == 10
            before = session.get(Track, TRACK).evidence_tag
        _settle(engine, versions[2], np.full(3, 0.002))
        with read_session(engine) as session:
            assert session.get(Track, TRACK).evidence_tag != before
        with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
            connection.execute(text("DELETE FROM audit_entry"))
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        _pg("pg_restore", "--clean", "--if-exists", "-d", "URL", str(newer), url=db_url)
        refused = cli("migrate", "--config", str(config), cwd=tmp_path)
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: the database is at schema revision '9999', "
                                         "which this Podium does not know")
        with read_session(engine) as session:
            assert session.exec(text("SELECT version_num FROM alembic_version")).one()[0] == \
                "9999"
    finally:
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}_src" CASCADE'))
        admin.dispose()
