import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from registry import migrations
from registry.db import make_engine, write_session
from registry.testing import DEFAULT_TRACK, register_stand_in
from shadow.scores import ScoreRows, insert_scores


def test_upgrade_downgrade_upgrade(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        assert migrations.current_revision(engine) is None
        migrations.upgrade(engine)
        assert migrations.current_revision(engine) == migrations.head_revision()
        tables = set(inspect(engine).get_table_names())
        assert {"track", "model_version", "audit_entry"} <= tables
        migrations.downgrade(engine, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        migrations.upgrade(engine)
        assert migrations.current_revision(engine) == migrations.head_revision()
    finally:
        engine.dispose()


def test_models_and_migrations_never_drift(engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_audit_log_is_append_only(engine, register) -> None:
    register("v1-linear")
    with pytest.raises(DBAPIError, match="append-only"), write_session(engine) as session:
        session.exec(text("UPDATE audit_entry SET reason = 'rewritten'"))
    with pytest.raises(DBAPIError, match="append-only"), write_session(engine) as session:
        session.exec(text("DELETE FROM audit_entry"))


# ------------------------------------------------------------------ the evidence tag's triggers

FIRST_DAY = dt.date(2025, 7, 1)
TRACK, OTHER, IDLE = DEFAULT_TRACK, "other-track", "idle-track"


def score_rows(version_id: str, days: int, first: dt.date = FIRST_DAY) -> ScoreRows:
    """``days`` settled days of ``version_id``, as a shadow run inserts them."""
    return ScoreRows(version_id, dt.datetime.now(dt.UTC),
                     [first + dt.timedelta(days=k) for k in range(days)], gross=[0.01] * days,
                     turnover=[0.1] * days, cost=[1e-4] * days, net=[0.0099] * days,
                     rank_ic=[None] * days, n_assets=[50] * days)


def _tags(connection) -> dict[str, int]:
    return dict(connection.execute(text("SELECT name, evidence_tag FROM track")).all())


def _track_updates(connection) -> int | None:
    """PostgreSQL's count of ``track`` rows this backend updated, this transaction's included
    (earlier transactions' until it reports them: compare two readings in one transaction);
    None on SQLite."""
    if connection.dialect.name != "postgresql":
        return None
    return connection.execute(text("SELECT n_tup_upd FROM pg_stat_xact_user_tables "
                                   "WHERE relid = 'track'::regclass")).scalar_one()


def _evidence_triggers(engine) -> set[tuple[str, str]]:
    """The evidence triggers on this schema's tables, each with what it fires for."""
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            return set(connection.execute(text(
                "SELECT tgname, CASE WHEN tgtype & 1 = 1 THEN 'row' ELSE 'statement' END "
                "FROM pg_trigger WHERE NOT tgisinternal AND tgname LIKE '%evidence%' AND tgrelid "
                "IN ('shadow_score'::regclass, 'model_version'::regclass)")).all())
        return set(connection.execute(text(
            "SELECT name, 'row' FROM sqlite_master WHERE type = 'trigger' "
            "AND name LIKE '%evidence%'")).all())


def _settle(engine, version_id: str, days: int, first: dt.date) -> tuple[bool, int | None]:
    """Insert ``days`` scores in one transaction: whether the track's tag changed, and how
    many times its row was rewritten (PostgreSQL)."""
    with engine.begin() as connection:
        before, counted = _tags(connection)[TRACK], _track_updates(connection)
        insert_scores(connection, score_rows(version_id, days, first))
        updates = _track_updates(connection)
    with engine.connect() as connection:
        changed = _tags(connection)[TRACK] != before
    return changed, None if updates is None else updates - counted


def test_evidence_triggers_fire_per_statement_on_postgresql_from_0008(
        db_url: str, artefacts_root) -> None:
    engine = make_engine(db_url)
    postgres = engine.dialect.name == "postgresql"
    per_row, per_statement = (40, 1) if postgres else (None, None)
    try:
        migrations.upgrade(engine, "0007")
        version = register_stand_in(engine, artefacts_root)
        row_triggers = _evidence_triggers(engine)
        assert len(row_triggers) == (2 if postgres else 6)
        assert {kind for _, kind in row_triggers} == {"row"}
        assert _settle(engine, version, 40, FIRST_DAY) == (True, per_row)
        migrations.upgrade(engine)
        if postgres:  # a trigger per table and event, TRUNCATE included
            assert {kind for _, kind in _evidence_triggers(engine)} == {"statement"}
            assert len(_evidence_triggers(engine)) == 8
        else:  # SQLite keeps 0007's row triggers
            assert _evidence_triggers(engine) == row_triggers
        assert _settle(engine, version, 40, FIRST_DAY + dt.timedelta(days=40)) == (
            True, per_statement)
        migrations.downgrade(engine, "0007")
        assert _evidence_triggers(engine) == row_triggers
        assert _settle(engine, version, 40, FIRST_DAY + dt.timedelta(days=80)) == (True, per_row)
    finally:
        engine.dispose()


def _changed(engine, sql: str, **params) -> set[str]:
    """The tracks whose tag one plain SQL statement (its own transaction) replaced."""
    with engine.begin() as connection:
        before = _tags(connection)
        connection.execute(text(sql), params)
        after = _tags(connection)
    return {name for name, tag in after.items() if before.get(name) != tag}


def test_a_multi_row_write_replaces_a_tag_once_and_every_change_still_does(
        engine, register) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's triggers fire per row (migration 0008)")
    version, other = register("v1-linear"), register("v1-linear", track=OTHER)
    register("v1-linear", track=IDLE)
    with engine.begin() as connection:  # the shadow runner's insert: one statement
        before, counted = _tags(connection), _track_updates(connection)
        insert_scores(connection, score_rows(version, 250))
        assert _track_updates(connection) - counted == 1
        connection.execute(text(  # a plain multi-row insert over two tracks
            "INSERT INTO shadow_score (version_id, day, gross, turnover, cost, net, n_assets, "
            "settled_at) SELECT v, DATE '2027-01-01' + k, 0.01, 0.1, 0.0001, 0.0099, 50, now() "
            "FROM unnest(CAST(:versions AS VARCHAR[])) AS v, generate_series(0, 99) AS k"),
            {"versions": [version, other]})
        assert _track_updates(connection) - counted == 3  # each track's row once more
    with engine.connect() as connection:
        after = _tags(connection)
    assert {name for name in after if after[name] != before[name]} == {TRACK, OTHER}
    v = {"v": version, "o": other}
    assert _changed(engine, "UPDATE shadow_score SET net = net + 1 WHERE version_id = :v",
                    **v) == {TRACK}
    assert _changed(engine, "UPDATE shadow_score SET version_id = :o "  # moved between tracks
                    "WHERE version_id = :v AND day = :day", day=FIRST_DAY, **v) == {TRACK, OTHER}
    assert _changed(engine, "DELETE FROM shadow_score WHERE version_id = :o", **v) == {OTHER}
    assert _changed(engine, "UPDATE shadow_score SET net = 0 WHERE false") == set()
    copy = ("INSERT INTO model_version (version_id, track, label, train_cutoff, fingerprint, "
            "state, bundle_path, bundle_digest, details, created_at, updated_at, kind) "
            "SELECT 'copy-20250630-00000000', track, label, train_cutoff, fingerprint, state, "
            "bundle_path, bundle_digest, details, created_at, updated_at, kind "
            "FROM model_version WHERE version_id = :v")
    assert _changed(engine, copy, **v) == {TRACK}
    assert _changed(engine, "UPDATE model_version SET track = :t WHERE version_id = "
                    "'copy-20250630-00000000'", t=IDLE) == {TRACK, IDLE}
    assert _changed(engine, "DELETE FROM model_version WHERE version_id = "
                    "'copy-20250630-00000000'") == {IDLE}
    assert _changed(engine, "UPDATE model_version SET state = 'retired' "
                    "WHERE version_id = :v", **v) == {TRACK}
    assert _changed(engine, "TRUNCATE shadow_score") == {TRACK, OTHER, IDLE}
