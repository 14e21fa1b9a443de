"""The stored judgement of each track, recomputed only when its inputs change.

Judging a track (every challenger through the gate, the leaderboard and its curves) reads every
settled day of every version and costs a fraction of a second of CPU on a track with dozens of
versions. Its inputs change only when a shadow run settles days, or a promotion, rollback or
retirement changes a version's state. Each judgement is stored with the key of the inputs it
was computed from: the database, the track's versions with their states and champion dates,
the count and latest settle time of their scores, and the gate settings. A reader recomputes
the key (one small query beside the versions it reads anyway) and gets the stored result while
the key holds; the first reader after a change recomputes it. Results are shared: callers must
not change them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, col, select

from registry.models import ModelVersion, ShadowScore

T = TypeVar("T")
MAX_TRACKS = 256
_stored: dict[tuple[str, str, str], tuple[tuple, Any]] = {}
_lock = threading.Lock()


def inputs_key(session: Session, versions: Sequence[ModelVersion], *settings: Any) -> tuple:
    """What a track's judgement depends on, cheaply: change any of it and the key changes."""
    ids = [v.version_id for v in versions]
    count, last_settled, last_day = session.exec(
        select(func.count(), func.max(ShadowScore.settled_at), func.max(ShadowScore.day))
        .where(col(ShadowScore.version_id).in_(ids))).one() if ids else (0, None, None)
    states = tuple(sorted((v.version_id, v.state, str(v.champion_since)) for v in versions))
    return states, count, str(last_settled), str(last_day), settings


def stored(session: Session, *, track: str, kind: str, key: tuple,
           compute: Callable[[], T]) -> T:
    """The stored ``kind`` result for ``track`` if computed from ``key``; else compute it."""
    slot = (str(session.get_bind().url), track, kind)
    with _lock:
        entry = _stored.get(slot)
    if entry is not None and entry[0] == key:
        return entry[1]
    result = compute()
    with _lock:
        if len(_stored) >= MAX_TRACKS:
            _stored.clear()
        _stored[slot] = (key, result)
    return result


def forget_all() -> None:
    """Drop every stored judgement (the next reader recomputes)."""
    with _lock:
        _stored.clear()
