"""A track's shadow evidence, read from the database: settled days in, the scorer's gate decision
and leaderboard out. Both are stored and served again until their inputs change
(``registry.judged_tracks``).

This is the I/O half; the scorer does the maths (``scorer.gate``, ``scorer.leaderboard``). Pandas
and scipy come with it, so callers import this module on first use. A challenger is judged
against the current champion on the days both were scored since the champion's first day as
champion (in market days: the first day after the last one settled before its promotion).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, col, select

from registry import judged_tracks
from registry.config import PodiumConfig
from registry.errors import NotFound
from registry.ids import validate_slug
from registry.lifecycle import State
from registry.models import ModelVersion, ShadowScore
from scorer.gate import evaluate_gate
from scorer.leaderboard import VersionEntry, build_leaderboard, cumulative_net_by_version
from scorer.report import GateDecision
from scorer.sharpe import daily_sharpe

T = TypeVar("T")
COLUMNS = ["gross", "turnover", "cost", "net", "rank_ic"]


def daily_scores(session: Session, version_ids: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Each version's settled days as a frame indexed by day (empty frames included)."""
    frames = {v: pd.DataFrame(columns=COLUMNS, index=pd.DatetimeIndex([], name="day"),
                              dtype=float) for v in version_ids}
    if not version_ids:
        return frames
    # Plain rows, not ORM objects: a track's history is tens of thousands of them.
    rows = session.exec(
        select(ShadowScore.version_id, ShadowScore.day,
               *(getattr(ShadowScore, column) for column in COLUMNS))
        .where(col(ShadowScore.version_id).in_(list(version_ids)))
        .order_by(col(ShadowScore.version_id), col(ShadowScore.day))
    ).all()
    if not rows:
        return frames
    table = pd.DataFrame.from_records(rows, columns=["version_id", "day", *COLUMNS])
    table["day"] = pd.to_datetime(table["day"])
    table[COLUMNS] = table[COLUMNS].astype(float)
    for version_id, group in table.groupby("version_id", sort=False):
        frames[str(version_id)] = group.set_index("day")[COLUMNS]
    return frames


def champion_first_day(session: Session, champion: ModelVersion | None) -> dt.date | None:
    """The champion's first market day as champion: after the last day settled before it won."""
    if champion is None or champion.champion_since is None:
        return None
    last_before = session.exec(
        select(func.max(ShadowScore.day))
        .join(ModelVersion, col(ModelVersion.version_id) == col(ShadowScore.version_id))
        .where(ModelVersion.track == champion.track,
               col(ShadowScore.settled_at) <= champion.champion_since)
    ).one()
    return None if last_before is None else last_before + dt.timedelta(days=1)


def judge_track(session: Session, *, track: str, config: PodiumConfig,
                spa_reps: int = 1000) -> tuple[GateDecision | None, list[ModelVersion],
                                               dict[str, pd.DataFrame]]:
    """Run the gate for every challenger on the track; also return the versions and frames."""
    validate_slug(track, what="track")
    versions = list(session.exec(select(ModelVersion).where(ModelVersion.track == track)))
    if not versions:
        raise NotFound(f"unknown track {track!r}", code="unknown_track")
    key = judged_tracks.evidence_key(session, track, config.gate_for(track).model_dump_json(),
                                     spa_reps)
    decision, daily = judged_tracks.stored(
        session, track=track, kind="judgement", key=key,
        compute=lambda: _judge(session, versions, track=track, config=config,
                               spa_reps=spa_reps))
    return decision, versions, daily


def _judge(session: Session, versions: list[ModelVersion], *, track: str,
           config: PodiumConfig, spa_reps: int
           ) -> tuple[GateDecision | None, dict[str, pd.DataFrame]]:
    daily = daily_scores(session, [v.version_id for v in versions])
    champion = next((v for v in versions if v.state == State.CHAMPION.value), None)
    challengers = [v.version_id for v in versions if v.state == State.CHALLENGER.value]
    if not challengers:
        return None, daily
    trials = [v for v, frame in daily.items() if len(frame) > 1]
    sharpes = [s for v in trials if np.isfinite(s := daily_sharpe(daily[v]["net"].to_numpy()))]
    since = champion_first_day(session, champion)
    decision = evaluate_gate(
        daily, champion=champion.version_id if champion else None, challengers=challengers,
        settings=config.gate_for(track), since=pd.Timestamp(since) if since else None,
        tried=[v.version_id for v in versions if v.state == State.RETIRED.value],
        n_trials=max(len(trials), 1),
        trial_sharpes=sharpes if len(sharpes) > 1 else None, spa_reps=spa_reps,
    )
    return decision, daily


def read_leaderboard(session: Session, *, track: str, config: PodiumConfig) -> dict[str, Any]:
    """The track's leaderboard from its settled shadow days: champion first, then challengers
    by verdict and mean net, retired last (JSON-safe)."""
    return stored_view(session, track=track, config=config, kind="leaderboard",
                       render=lambda: _leaderboard(session, track=track, config=config))


def stored_view(session: Session, *, track: str, config: PodiumConfig, kind: str,
                render: Callable[[], T]) -> T:
    """``render()``'s result for ``track``, computed once per change of the track's evidence
    (a settled day, a registration, a promotion, a rollback): serialised answers and the page
    are stored beside the leaderboard itself, so a reader costs one primary-key lookup
    (``judged_tracks.stored_if_fresh`` with ``judged_tracks.view_key`` reads it without
    a session)."""
    key = judged_tracks.view_key(session, track=track, config=config)
    return judged_tracks.stored(session, track=track, kind=kind, key=key, compute=render)


def _leaderboard(session: Session, *, track: str, config: PodiumConfig) -> dict[str, Any]:
    decision, versions, daily = judge_track(session, track=track, config=config)
    entries = [VersionEntry(v.version_id, v.state, v.spec_name or "-", v.train_cutoff)
               for v in versions]
    rows = build_leaderboard(entries, daily, decision)
    curves = cumulative_net_by_version({v: f for v, f in daily.items() if not f.empty})
    return {
        "track": track,
        "winner": decision.winner if decision else None,
        "winner_reason": decision.winner_reason if decision else None,
        "spa_pvalue": decision.spa_pvalue if decision else None,
        "rows": [row.to_dict() for row in rows],
        "curves": {v: {"days": [d.date().isoformat() for d in s.index],
                       "cumulative_net": [float(x) for x in s.to_numpy()]}
                   for v, s in curves.items()},
    }
