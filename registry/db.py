"""Engines and sessions: SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL by URL.

No engine is created at import time: ``make_engine(url)`` is called at an entry point and passed
down. Write transactions go through ``write_session``: on SQLite it begins with
``BEGIN IMMEDIATE``, taking the database's write lock up front so that two writers queue on the
busy timeout instead of deadlocking on a lock upgrade; on PostgreSQL the store locks the track's
row (``SELECT … FOR UPDATE``) inside the transaction.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Dialect, Engine, Executable, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from registry.errors import Unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
_IMMEDIATE = "podium_sqlite_immediate"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def safe_url(url: str) -> str:
    """``url`` for messages: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url``, configured for Podium's concurrency model."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_timeout", 10)
        connect_args = kwargs.setdefault("connect_args", {})
        if parsed.get_backend_name() == "postgresql":
            connect_args.setdefault("connect_timeout", 5)
        return create_engine(parsed, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    connect_args = kwargs.setdefault("connect_args", {})
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_MS / 1000)
    connect_args.setdefault("check_same_thread", False)
    engine = create_engine(parsed, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        immediate = connection.get_execution_options().get(_IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    with translate_db_errors(), Session(engine) as session:
        yield session


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session for one write transaction; commit inside, rollback on any error."""
    bound = engine.execution_options(**{_IMMEDIATE: True}) if is_sqlite(engine) else engine
    with translate_db_errors(), Session(bound, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            session.rollback()
            raise


def driver_rows(source: Engine | Session, statement: Executable, **params: Any) -> list[tuple]:
    """``statement``'s rows as the database driver returns them: no ORM, no result processing.

    From a session: in its transaction. From an engine: on a pooled DBAPI connection of its
    own, for the readers' hot paths on the event loop (an ORM session costs tens of times an
    indexed read). The same statement gives the same values either way, so that a key read one
    way compares equal to the key read the other."""
    engine = source if isinstance(source, Engine) else source.get_bind()
    sql, order = _compiled(statement, engine.dialect)
    args = tuple(params[name] for name in order) if order is not None else params
    if not isinstance(source, Engine):
        return [tuple(row) for row in source.connection().exec_driver_sql(sql, args)]
    dbapi_error = source.dialect.loaded_dbapi.Error
    with translate_db_errors():
        try:
            connection = source.raw_connection()
            try:
                cursor = connection.cursor()
                cursor.execute(sql, args)
                rows = cursor.fetchall()
                cursor.close()
            finally:
                connection.close()
        except dbapi_error as exc:  # as SQLAlchemy would raise it, for translate_db_errors
            raise DBAPIError.instance(sql, params, exc, dbapi_error) from exc
    return rows


@functools.cache
def _compiled(statement: Executable, dialect: Dialect) -> tuple[str, tuple[str, ...] | None]:
    """``statement``'s SQL in the driver's paramstyle, and the parameter order if positional."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), tuple(compiled.positiontup or ()) if compiled.positional else None


@contextmanager
def translate_db_errors() -> Iterator[None]:
    """Turn 'cannot reach / locked' database errors into ``Unavailable`` (503)."""
    try:
        yield
    except PoolTimeout:  # every pooled connection stayed busy for pool_timeout seconds
        raise Unavailable("the database is busy (no free connection); retry shortly",
                          code="database_busy") from None
    except (OperationalError, ProgrammingError) as exc:
        message = str(exc.orig) if exc.orig is not None else str(exc)
        if "no such table" in message or "does not exist" in message:
            raise Unavailable("the database has no Podium schema yet: run `registry migrate`",
                              code="database_not_migrated") from None
        if isinstance(exc, ProgrammingError):
            raise
        if "locked" in message or "busy" in message:
            raise Unavailable("the database is busy; retry shortly",
                              code="database_busy") from None
        raise Unavailable("the database is unreachable; retry shortly",
                          code="database_unavailable") from None
