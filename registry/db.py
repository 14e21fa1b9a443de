"""Engines and sessions: SQLite (WAL, busy timeout, foreign keys) by default, PostgreSQL by URL.

No engine is created at import time: ``make_engine(url)`` is called at an entry point and passed
down. Write transactions go through ``write_session``: on SQLite it begins with
``BEGIN IMMEDIATE``, taking the database's write lock up front so that two writers queue on the
busy timeout instead of deadlocking on a lock upgrade; on PostgreSQL the store locks the track's
row (``SELECT … FOR UPDATE``) inside the transaction.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Dialect, Engine, Executable, Insert, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlmodel import Session

from registry.config.storage import DatabaseConfig
from registry.errors import Unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
POOL_TIMEOUT_S: float = DatabaseConfig.model_fields["pool_timeout_s"].default
MAX_PARAMETERS = 999  # per statement: SQLite's oldest limit (newer builds allow 32,766)
_IMMEDIATE = "podium_sqlite_immediate"


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def safe_url(url: str) -> str:
    """``url`` for messages: the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


@contextmanager
def opened_engine(database: DatabaseConfig) -> Iterator[Engine]:
    """The engine of one command on the configured database (its pool timeout included),
    disposed of on the way out: what every ``registry``, ``shadow`` and ``zoo`` command that
    reads or writes the registry opens."""
    engine = make_engine(database.url, pool_timeout_s=database.pool_timeout_s)
    try:
        yield engine
    finally:
        engine.dispose()


def make_engine(url: str, *, pool_timeout_s: float = POOL_TIMEOUT_S, **kwargs: Any) -> Engine:
    """An engine for ``url``, configured for Podium's concurrency model. ``pool_timeout_s``:
    how long a checkout waits for a free pooled connection of a server database (SQLite's
    writers queue on its busy timeout instead)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
        kwargs.setdefault("pool_timeout", pool_timeout_s)
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


def insert_columns(connection: Connection, statement: Insert, values: dict[str, Any], *,
                   rows: int) -> None:
    """Insert ``rows`` rows given column by column (each of ``values`` a list of one value per
    row, or one value for every row) through the driver, in the connection's transaction.

    SQLAlchemy compiles ``statement`` once per dialect and its bind processors convert each
    value, so the driver gets what SQLAlchemy's own executemany would send it, without the
    parameter dict per row that costs more than the insert. A positional driver (SQLite's) gets
    multi-row ``VALUES`` statements of up to :data:`MAX_PARAMETERS` parameters: each runs, and
    gives up the GIL, once for many rows rather than once per row. A named one (psycopg's) gets
    an executemany."""
    columns = tuple(values)
    sql, order, processors = _compiled_insert(statement, connection.dialect, columns)
    processed = bound_columns(values, processors, rows=rows)
    if order is None:
        connection.exec_driver_sql(sql, [dict(zip(columns, row, strict=True)) for row in
                                         zip(*processed.values(), strict=True)])
        return
    width = len(order)
    flat = list(itertools.chain.from_iterable(zip(*(processed[name] for name in order),
                                                  strict=True)))
    step = max(1, MAX_PARAMETERS // width) * width
    for start in range(0, len(flat), step):
        chunk = tuple(flat[start:start + step])
        connection.exec_driver_sql(_rows_sql(sql, len(chunk) // width), chunk)


def bound_columns(values: dict[str, Any], processors: list, *, rows: int) -> dict[str, list]:
    """``values`` (columns: lists of one value per row, or one value for every row) as the
    driver takes them: converted by their bind ``processors`` (one per column, in order)."""
    bound = {}
    for (name, column), process in zip(values.items(), processors, strict=True):
        if not isinstance(column, list):  # converted once
            column = [process(column) if process else column] * rows
        elif process is not None:
            column = [process(value) for value in column]
        bound[name] = column
    return bound


@functools.lru_cache(maxsize=32)
def _compiled_insert(statement: Insert, dialect: Dialect, columns: tuple[str, ...]
                     ) -> tuple[str, tuple[str, ...] | None, list]:
    """``statement``'s SQL for one row of ``columns``, the positional parameter order (None:
    named) and each column's bind processor."""
    compiled = statement.compile(dialect=dialect, column_keys=list(columns))
    return (str(compiled), tuple(compiled.positiontup) if compiled.positional else None,
            bind_processors(statement.table, columns, dialect))


def bind_processors(table: Any, columns: tuple[str, ...], dialect: Dialect) -> list:
    """The dialect's bind processor (None: the value goes as it is) of each of ``columns``."""
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


@functools.lru_cache(maxsize=64)
def _rows_sql(single: str, count: int) -> str:
    """``single`` (an insert of one row of positional parameters) for ``count`` rows."""
    head, row, tail = re.fullmatch(r"(.* VALUES )(\([?, ]+\))(.*)", single, re.DOTALL).groups()
    return head + ", ".join([row] * count) + tail


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
