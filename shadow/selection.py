"""Which (version, day) pairs a run has left to settle, per track, from the scores stored.

A version is shadowed while it is a champion or a challenger. A day after its ``train_cutoff``
is settled once its outcome (the next day) has landed; a version whose settled days have no gaps
is known from two numbers (how many, and the last), so a run need not list its days.
"""

from __future__ import annotations

import bisect
import datetime as dt

from sqlalchemy import Engine
from sqlmodel import col, func, select

from registry.db import read_session
from registry.lifecycle import State
from registry.models import ModelVersion, ShadowScore


def shadowed_versions(engine: Engine, track: str | None = None) -> list[ModelVersion]:
    """The champion and challengers of ``track`` (None: of every track), retired ones left out."""
    query = select(ModelVersion).where(
        col(ModelVersion.state).in_([State.CHAMPION.value, State.CHALLENGER.value]))
    if track is not None:
        query = query.where(ModelVersion.track == track)
    with read_session(engine) as session:
        return list(session.exec(query.order_by(col(ModelVersion.track),
                                                col(ModelVersion.version_id))))


def unconfigured_versions(engine: Engine, tracks: list[str]) -> dict[str, list[str]]:
    """``{track: version ids}`` of the champions and challengers of tracks not in ``tracks``."""
    query = (select(ModelVersion.track, ModelVersion.version_id)
             .where(col(ModelVersion.state).in_([State.CHAMPION.value, State.CHALLENGER.value]),
                    col(ModelVersion.track).not_in(tracks))
             .order_by(col(ModelVersion.track), col(ModelVersion.version_id)))
    found: dict[str, list[str]] = {}
    with read_session(engine) as session:
        for track, version_id in session.exec(query):
            found.setdefault(track, []).append(version_id)
    return found


def settled_so_far(engine: Engine, versions: list[ModelVersion]
                   ) -> dict[str, tuple[int, dt.date]]:
    """``{version id: (days settled, last day settled)}`` for the versions with any score."""
    with read_session(engine) as session:
        return {version_id: (count, last) for version_id, count, last in session.exec(
            select(ShadowScore.version_id, func.count(), func.max(ShadowScore.day))
            .where(col(ShadowScore.version_id).in_([v.version_id for v in versions]))
            .group_by(col(ShadowScore.version_id)))}


def settled_through(versions: list[ModelVersion], landed: list[dt.date],
                    settled: dict[str, tuple[int, dt.date]]) -> dict[str, dt.date]:
    """The day through which each version has settled every landed day after its cutoff (its
    cutoff when it has settled none); versions with gaps are left out."""
    through = {}
    for version in versions:
        count, last = settled.get(version.version_id, (0, None))
        if last is None:
            through[version.version_id] = version.train_cutoff
        elif count == (bisect.bisect_right(landed, last)
                       - bisect.bisect_right(landed, version.train_cutoff)):
            through[version.version_id] = last
    return through


def first_unsettled(versions: list[ModelVersion], landed: list[dt.date],
                    through: dict[str, dt.date]) -> int:
    """Index in ``landed`` of the first day after its cutoff that some version has not settled
    (``len(landed)`` when there is none)."""
    first = len(landed)
    for version in versions:
        last = through.get(version.version_id, version.train_cutoff)
        first = min(first, bisect.bisect_right(landed, last))
    return first
