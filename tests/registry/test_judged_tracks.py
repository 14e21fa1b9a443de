"""A track's judgement is stored and served again until a settle, promotion or rollback."""

from __future__ import annotations

import datetime as dt

import numpy as np
from sqlalchemy import text

from registry import judged_tracks, store
from registry.db import read_session, write_session
from registry.evidence import judge_track, read_leaderboard
from registry.promotion import promote
from tests.registry.test_promotion import TRACK, _settle, config  # noqa: F401 (a fixture)


def _board(engine, config) -> dict:  # noqa: F811 (the fixture's value)
    with read_session(engine) as session:
        return read_leaderboard(session, track=TRACK, config=config)


def _judged(engine, config):  # noqa: F811
    with read_session(engine) as session:
        return judge_track(session, track=TRACK, config=config)


def test_the_leaderboard_is_served_from_store_until_its_inputs_change(
        engine, config, register) -> None:  # noqa: F811
    champion, challenger = register("v1-linear"), register("v2-linear")
    promote(engine, version_id=champion, actor="ops", reason="first", config=config, force=True)
    rng = np.random.default_rng(3)
    _settle(engine, champion, rng.normal(0.0, 0.01, 120))
    first = _board(engine, config)
    assert _board(engine, config) is first  # nothing changed: the stored result
    assert _judged(engine, config)[0] is _judged(engine, config)[0]
    _settle(engine, challenger, rng.normal(0.004, 0.01, 120))  # a shadow run settles
    settled = _board(engine, config)
    assert settled is not first
    rows = {row["version_id"]: row for row in settled["rows"]}
    assert rows[challenger]["metrics"]["days"] == 120
    assert _board(engine, config) is settled
    promote(engine, version_id=challenger, actor="alice", reason="better", config=config)
    promoted = _board(engine, config)  # a promotion changes states: judged again
    assert promoted is not settled
    assert {r["version_id"]: r["state"] for r in promoted["rows"]} == {
        champion: "retired", challenger: "champion"}
    with write_session(engine) as session:  # a rollback
        store.rollback_track(session, track=TRACK, actor="ops", reason="undo",
                             artefacts_root=config.artefacts_root)
    rolled = _board(engine, config)
    assert {r["version_id"]: r["state"] for r in rolled["rows"]} == {
        champion: "champion", challenger: "retired"}


def _key(engine, track: str = TRACK) -> tuple | None:
    with read_session(engine) as session:
        return judged_tracks.evidence_key(session, track)


def test_the_database_marks_every_change_of_a_tracks_evidence_whoever_writes_it(
        engine, register) -> None:
    version, other = register("v1-linear"), register("v1-linear", track="other-track")
    before, other_before = _key(engine), _key(engine, "other-track")
    with engine.begin() as connection:  # a plain SQL writer: no Podium code involved
        connection.execute(text(
            "INSERT INTO shadow_score (version_id, day, gross, turnover, cost, net, n_assets, "
            "settled_at) VALUES (:v, '2025-07-01', 0.01, 0.1, 0.0001, 0.0099, 50, :now)"),
            {"v": version, "now": dt.datetime.now(dt.UTC)})
    settled = _key(engine)
    assert settled != before and _key(engine, "other-track") == other_before
    with engine.begin() as connection:
        connection.execute(text("UPDATE model_version SET state = 'retired' "
                                "WHERE version_id = :v"), {"v": version})
    retired = _key(engine)
    assert retired not in (before, settled)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM shadow_score WHERE version_id = :v"),
                           {"v": version})
    assert _key(engine) not in (before, settled, retired)
    assert _key(engine, "other-track") == other_before and other
    assert _key(engine, "no-such-track") is None


def test_a_key_read_without_a_session_equals_the_key_read_in_one(engine, register) -> None:
    # The event loop checks a stored answer with the engine's key; the thread pool stored it
    # under the session's: the two must compare equal on each database.
    register("v1-linear")
    with read_session(engine) as session:
        in_session = judged_tracks.evidence_key(session, TRACK, "settings")
    assert in_session is not None
    assert judged_tracks.evidence_key(engine, TRACK, "settings") == in_session
    assert judged_tracks.evidence_key(engine, "no-such-track") is None
