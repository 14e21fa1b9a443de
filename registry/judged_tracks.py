"""The stored judgement of each track, recomputed only when its evidence changes.

Judging a track (every challenger through the gate, the leaderboard and its curves) reads every
settled day of every version and costs a fraction of a second of CPU on a track with dozens of
versions. Its inputs change only when a shadow run settles days, or a registration, promotion,
rollback or retirement changes a version. The database itself marks each such change: triggers
replace the track's ``evidence_tag`` in the same transaction (migrations 0007 and 0008: once
per statement on PostgreSQL, per row on SQLite), whichever process writes. Each judgement (and
each answer serialised from it) is stored with the key it was computed from: the tag, the
track's creation time and the settings it depends on. A reader reads the key (one primary-key
lookup) and gets the stored result while the key holds; the first reader after a change
recomputes it, once: readers arriving meanwhile wait for its result rather than computing it
again beside it. Results are shared: callers must not change them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlmodel import Session, select

from registry.models import Track

T = TypeVar("T")
MAX_STORED = 256
_stored: dict[tuple[str, str, str], tuple[tuple, Any]] = {}
_computing: dict[tuple[str, str, str], threading.Lock] = {}  # one computation per slot at once
_lock = threading.Lock()


def evidence_key(session: Session, track: str, *settings: Any) -> tuple | None:
    """What a track's judgement depends on, cheaply (``None``: no such track)."""
    row = session.exec(select(Track.created_at, Track.evidence_tag)
                       .where(Track.name == track)).first()
    return None if row is None else (str(row[0]), row[1], settings)


def stored_if_fresh(session: Session, *, track: str, kind: str, key: tuple) -> Any | None:
    """The stored ``kind`` result for ``track`` if computed from ``key``; else ``None`` (never
    computes: for callers that must not block, such as the event loop)."""
    with _lock:
        entry = _stored.get((str(session.get_bind().url), track, kind))
    return entry[1] if entry is not None and entry[0] == key else None


def stored(session: Session, *, track: str, kind: str, key: tuple,
           compute: Callable[[], T]) -> T:
    """The stored ``kind`` result for ``track`` if computed from ``key``; else compute it."""
    slot = (str(session.get_bind().url), track, kind)
    with _lock:
        entry = _stored.get(slot)
        guard = _computing.setdefault(slot, threading.Lock())
    if entry is not None and entry[0] == key:
        return entry[1]
    with guard:
        with _lock:
            entry = _stored.get(slot)
        if entry is not None and entry[0] == key:  # computed while this reader waited
            return entry[1]
        result = compute()
        with _lock:
            if len(_stored) >= MAX_STORED:
                _stored.clear()
                _computing.clear()
            _stored[slot] = (key, result)
    return result
