"""``registry backup`` / ``registry restore``: a consistent copy while writes go on; the schema
revision checked before a restored database is used."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from registry import migrations, promotion
from registry.backup import BackupError, backup_sqlite, restore_sqlite
from registry.db import make_engine, read_session, write_session
from registry.errors import AlreadyExists, InvalidInput
from tests.faults.conftest import assert_consistent
from tests.registry.test_cli import cli

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
