"""Settled score rows into ``shadow_score``: one statement of plain driver parameters.

A backfill inserts thousands of rows on a thread beside the runner's NumPy work. SQLAlchemy's
executemany builds and processes a parameter dict per row in Python, holding the GIL long
enough to slow the runner's main thread by a fifth; here the statement is compiled once per
dialect by SQLAlchemy, and the dialect's own bind processors convert each column once, so the
driver gets what SQLAlchemy would have sent it. On PostgreSQL the rows go as one array per
column into a single ``INSERT ... SELECT FROM unnest(...)``: the database runs one statement
rather than one per row, so its statement-level triggers replace the track's evidence tag once
(migration 0008). SQLite, whose triggers fire per row anyway, gets multi-row ``VALUES``
statements (:func:`registry.db.insert_columns`): one per hundred rows rather than one per row.
A (version, day) that already has a score is left alone: it is scored once, ever.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, cast, func, literal_column, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Dialect

from registry.db import bind_processors, bound_columns, insert_columns
from registry.models import ShadowScore

COLUMNS = ("version_id", "day", "gross", "turnover", "cost", "net", "rank_ic", "n_assets",
           "settled_at")


@dataclass(frozen=True)
class ScoreRows:
    """One version's settled days, column by column (``rank_ic`` None where undefined)."""

    version_id: str
    settled_at: dt.datetime
    day: list[dt.date]
    gross: list[float]
    turnover: list[float]
    cost: list[float]
    net: list[float]
    rank_ic: list[float | None]
    n_assets: list[int]

    def __len__(self) -> int:
        return len(self.day)


_SQLITE_INSERT = sqlite_insert(ShadowScore).on_conflict_do_nothing(
    index_elements=["version_id", "day"])


@functools.lru_cache(maxsize=4)
def _postgresql_statement(dialect: Dialect) -> tuple[str, tuple[str, ...] | None,
                                                     list[Callable[[Any], Any] | None]]:
    """The insert's SQL, its positional parameter order (None: named), and the bind processor
    of each of :data:`COLUMNS`' elements."""
    table = ShadowScore.__table__
    arrays = [cast(bindparam(name), ARRAY(table.c[name].type)) for name in COLUMNS]
    statement = pg_insert(ShadowScore).from_select(
        list(COLUMNS), select(literal_column("*")).select_from(func.unnest(*arrays)))
    compiled = statement.on_conflict_do_nothing(index_elements=["version_id", "day"]).compile(
        dialect=dialect, column_keys=list(COLUMNS))
    processors = bind_processors(table, COLUMNS, dialect)
    order = tuple(compiled.positiontup) if compiled.positional else None
    return str(compiled), order, processors


def insert_scores(connection: Connection, rows: ScoreRows) -> None:
    """Insert ``rows`` in the connection's transaction (one statement on PostgreSQL, one per
    hundred rows on SQLite)."""
    if not len(rows):
        return
    values = {name: getattr(rows, name) for name in COLUMNS}
    if connection.dialect.name != "postgresql":
        insert_columns(connection, _SQLITE_INSERT, values, rows=len(rows))
        return
    sql, order, processors = _postgresql_statement(connection.dialect)
    arrays = bound_columns(values, processors, rows=len(rows))
    connection.exec_driver_sql(sql, tuple(arrays[name] for name in order) if order else arrays)
