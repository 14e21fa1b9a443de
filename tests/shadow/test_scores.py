"""Score rows through the driver's executemany read back exactly as SQLAlchemy's own insert."""

from __future__ import annotations

import datetime as dt

from sqlmodel import select

from registry.db import read_session, write_session
from registry.models import ShadowScore
from shadow.scores import ScoreRows, insert_scores

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
