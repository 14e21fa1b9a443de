"""Settling a shadow run's days: what the triggers that replace a track's evidence tag cost.

Inserts one version's settled days (2,500 by default) in one transaction, as the shadow runner
does, into a fresh SQLite registry and, with ``--postgres URL``, a fresh PostgreSQL schema:
under migration 0007's row triggers, under 0008's (statement-level on PostgreSQL; SQLite keeps
0007's), and with the evidence trigger dropped (the floor). On PostgreSQL each is measured with
the runner's insert (one statement over arrays) and with the insert it sent before 0008 (one
statement per row, by executemany), and the rewrites of the track's row in one transaction are
counted. Reports the median of ``--repeats`` transactions (insert and commit) after one
untimed; the rows are deleted between them, untimed.

    .venv/bin/python bench/evidence_triggers.py [--rows 2500] [--repeats 7] [--postgres URL]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.dialects.postgresql import insert as pg_insert

from registry import migrations
from registry.db import make_engine
from registry.models import ShadowScore
from registry.testing import register_stand_in
from shadow.scores import COLUMNS, ScoreRows, insert_scores

Insert = Callable[[Connection, ScoreRows], None]


def per_row(connection: Connection, rows: ScoreRows) -> None:
    """What ``insert_scores`` sent PostgreSQL before 0008: one INSERT per row (executemany)."""
    sql = str(pg_insert(ShadowScore).on_conflict_do_nothing(index_elements=["version_id", "day"])
              .compile(dialect=connection.dialect, column_keys=list(COLUMNS)))
    columns = [getattr(rows, name) for name in COLUMNS]
    connection.exec_driver_sql(sql, [
        dict(zip(COLUMNS, (column[k] if isinstance(column, list) else column
                           for column in columns), strict=True)) for k in range(len(rows))])


def score_rows(version_id: str, days: int) -> ScoreRows:
    first = dt.date(2000, 1, 3)
    return ScoreRows(version_id, dt.datetime.now(dt.UTC),
                     [first + dt.timedelta(days=k) for k in range(days)],
                     gross=[0.01 + k * 1e-6 for k in range(days)], turnover=[0.1] * days,
                     cost=[1e-4] * days, net=[0.0099 + k * 1e-6 for k in range(days)],
                     rank_ic=[0.05] * days, n_assets=[500] * days)


def changes(connection: Connection) -> int:
    """A running count that grows by one per rewrite of a ``track`` row: PostgreSQL's
    updated-row count of the table; SQLite's count of every row changed (the inserted rows
    too: the caller subtracts them)."""
    if connection.dialect.name == "postgresql":
        return connection.execute(text("SELECT n_tup_upd FROM pg_stat_xact_user_tables "
                                       "WHERE relid = 'track'::regclass")).scalar_one()
    return connection.execute(text("SELECT total_changes()")).scalar_one()


def measure(engine: Engine, insert: Insert, rows: ScoreRows, repeats: int
            ) -> tuple[float, int]:
    """Median milliseconds of one transaction inserting ``rows``, and the track's rewrites."""
    times, rewrites = [], 0
    for repeat in range(repeats + 1):
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM shadow_score"))
        start = time.perf_counter()
        with engine.begin() as connection:
            before = changes(connection) if not repeat else None
            insert(connection, rows)
            if before is not None:  # the first, untimed: counts the track's rewrites
                inserted = 0 if connection.dialect.name == "postgresql" else len(rows)
                rewrites = changes(connection) - before - inserted
        if repeat:
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), rewrites


def drop_evidence_trigger(engine: Engine) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("DROP TRIGGER shadow_score_evidence_insert ON shadow_score"))
        else:
            connection.execute(text("DROP TRIGGER shadow_score_evidence_insert"))


def run(database_url: str, root: Path, args: argparse.Namespace
        ) -> list[tuple[str, float, int]]:
    engine = make_engine(database_url)
    postgres = engine.dialect.name == "postgresql"
    inserts: list[tuple[str, Insert]] = [("one statement", insert_scores)] if postgres else [
        ("executemany", insert_scores)]
    if postgres:
        inserts.insert(0, ("a statement per row", per_row))
    results = []
    try:
        migrations.upgrade(engine, "0007")
        (root / "artefacts").mkdir(parents=True, exist_ok=True)
        rows = score_rows(register_stand_in(engine, root / "artefacts", "v1-bench"), args.rows)
        for triggers, prepare in (("0007 row triggers", None),
                                  ("0008 triggers", migrations.upgrade),
                                  ("no evidence trigger", drop_evidence_trigger)):
            if prepare is not None:
                prepare(engine)
            for name, insert in inserts:
                ms, rewrites = measure(engine, insert, rows, args.repeats)
                results.append((f"{triggers}, {name}", ms, rewrites))
    finally:
        engine.dispose()
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL: a fresh schema in "
                        "its database is used and dropped")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="podium-bench-") as work:
        backends = [("sqlite", f"sqlite:///{Path(work) / 'podium.db'}")]
        schema = f"bench_{uuid.uuid4().hex[:12]}"
        if args.postgres:
            sep = "&" if "?" in args.postgres else "?"
            backends.append(("postgresql",
                             f"{args.postgres}{sep}options=-csearch_path%3D{schema}"))
            admin = create_engine(args.postgres)
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            print(f"{args.rows} score rows in one transaction, median of {args.repeats}")
            print(f"{'database':11} {'triggers, insert':46} {'ms':>8} {'track rewrites':>15}")
            for backend, url in backends:
                for case, ms, rewrites in run(url, Path(work) / backend, args):
                    print(f"{backend:11} {case:46} {ms:8.1f} {rewrites:15}")
        finally:
            if args.postgres:
                with admin.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
