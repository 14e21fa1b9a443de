"""The engine a command opens: the configured database, its pool timeout, closed on the way out."""

from __future__ import annotations

from sqlalchemy import text

from registry.config.storage import DatabaseConfig
from registry.db import is_sqlite, opened_engine, read_session


def test_a_command_engine_takes_the_configured_pool_timeout_and_closes_its_connections(
        db_url) -> None:
    with opened_engine(DatabaseConfig(url=db_url, pool_timeout_s=3)) as engine:
        with read_session(engine) as session:
            assert session.connection().execute(text("SELECT 1")).scalar_one() == 1
        if not is_sqlite(engine):
            assert engine.pool.timeout() == 3
        assert engine.pool.checkedin() == 1  # pooled, still open
    assert engine.pool.checkedin() == 0  # disposed: no connection left open
