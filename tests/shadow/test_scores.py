"""Score rows inserted through the driver read back exactly as SQLAlchemy's own insert."""

from __future__ import annotations

import datetime as dt

from sqlmodel import select

from registry.db import MAX_PARAMETERS, read_session, write_session
from registry.models import ShadowScore
from shadow.scores import COLUMNS, ScoreRows, insert_scores

SETTLED_AT = dt.datetime(2026, 11, 29, 8, 30, 15, 123456, tzinfo=dt.UTC)
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3), dt.date(2026, 3, 4)]


def rows_for(version_id: str, *, gross: float = 0.0125) -> ScoreRows:
    return ScoreRows(version_id, SETTLED_AT, DAYS, gross=[gross, -0.5, 1e-300],
                     turnover=[0.0, 1.75, 4.0], cost=[0.0, 0.00175, 0.004],
                     net=[gross, -0.50175, -0.004], rank_ic=[0.25, None, -1.0],
                     n_assets=[500, 499, 2])


def stored(engine, version_id: str) -> list[dict]:
    with read_session(engine) as session:
        return [row.model_dump(exclude={"version_id"}) for row in session.exec(
            select(ShadowScore).where(ShadowScore.version_id == version_id)
            .order_by(ShadowScore.day))]


def test_rows_read_back_as_the_orm_writes_them(engine, register) -> None:
    ours, theirs = register("v1-ours"), register("v1-theirs")
    with write_session(engine) as session:
        insert_scores(session.connection(), rows_for(ours))
        session.commit()
    expected = rows_for(theirs)
    with write_session(engine) as session:
        for k, day in enumerate(expected.day):
            session.add(ShadowScore(
                version_id=theirs, day=day, gross=expected.gross[k],
                turnover=expected.turnover[k], cost=expected.cost[k], net=expected.net[k],
                rank_ic=expected.rank_ic[k], n_assets=expected.n_assets[k],
                settled_at=SETTLED_AT))
        session.commit()
    assert stored(engine, ours) == stored(engine, theirs)
    assert [row["day"] for row in stored(engine, ours)] == DAYS
    assert [row["rank_ic"] for row in stored(engine, ours)] == [0.25, None, -1.0]


def test_a_scored_day_is_never_scored_again(engine, register) -> None:
    version_id = register()
    with write_session(engine) as session:
        insert_scores(session.connection(), rows_for(version_id))
        session.commit()
    first = stored(engine, version_id)
    with write_session(engine) as session:
        insert_scores(session.connection(), rows_for(version_id, gross=0.9))
        insert_scores(session.connection(), ScoreRows(version_id, SETTLED_AT, [], [], [], [],
                                                      [], [], []))
        session.commit()
    assert stored(engine, version_id) == first


def test_a_long_backfill_goes_in_whole_across_statements(engine, register) -> None:
    SQLITE_ROWS = MAX_PARAMETERS // len(COLUMNS)  # noqa: N806 (rows per SQLite statement)
    version_id = register()
    days = [dt.date(2020, 1, 1) + dt.timedelta(days=k) for k in range(2 * SQLITE_ROWS + 5)]

    def rows(picked: list[dt.date], gross: float) -> ScoreRows:
        n = len(picked)
        return ScoreRows(version_id, SETTLED_AT, picked, [gross + k for k in range(n)],
                         [0.5] * n, [0.001] * n, [gross + k - 0.001 for k in range(n)],
                         [None if k % 7 == 0 else 0.1 for k in range(n)],
                         [300 + k for k in range(n)])

    with write_session(engine) as session:  # some days already settled, in another chunk
        insert_scores(session.connection(), rows(days[SQLITE_ROWS + 3:SQLITE_ROWS + 6], -9.0))
        session.commit()
    with write_session(engine) as session:
        insert_scores(session.connection(), rows(days, 0.0))
        session.commit()
    back = stored(engine, version_id)
    assert [row["day"] for row in back] == days
    kept = {SQLITE_ROWS + 3 + k: -9.0 + k for k in range(3)}
    assert [row["gross"] for row in back] == [kept.get(k, float(k)) for k in range(len(days))]
    assert back[-1]["n_assets"] == 300 + len(days) - 1
    assert [row["rank_ic"] for row in back][:8] == [None, *[0.1] * 6, None]
