import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import SQLModel

from registry import migrations
from registry.db import make_engine, write_session


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
