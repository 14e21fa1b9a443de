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

A key is read as the driver returns it (``registry.db.driver_rows``): from a session, in its
transaction; from an engine, without any session, so that the event loop can check a stored
answer for a few tens of µs and leave only the computing to the thread pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, bindparam, select
from sqlmodel import Session

from registry.db import driver_rows
from registry.errors import NotFound
from registry.ids import validate_slug
from registry.models import Track

if TYPE_CHECKING:
    from registry.config import PodiumConfig

T = TypeVar("T")
MAX_STORED = 256
_stored: dict[tuple[str, str, str], tuple[tuple, Any]] = {}
_computing: dict[tuple[str, str, str], threading.Lock] = {}  # one computation per slot at once
_lock = threading.Lock()
_EVIDENCE = select(Track.created_at, Track.evidence_tag).where(Track.name == bindparam("track"))


def evidence_key(source: Session | Engine, track: str, *settings: Any) -> tuple | None:
    """What a track's judgement depends on, cheaply (``None``: no such track)."""
    rows = driver_rows(source, _EVIDENCE, track=track)
    return None if not rows else (str(rows[0][0]), rows[0][1], settings)


def view_key(source: Session | Engine, *, track: str, config: PodiumConfig) -> tuple:
    """The key of what is shown of ``track`` (its evidence and its gate's settings): the
    leaderboard and the answers serialised from it. ``NotFound`` for an unknown track."""
    validate_slug(track, what="track")
    key = evidence_key(source, track, config.gate_for(track).model_dump_json())
    if key is None:
        raise NotFound(f"unknown track {track!r}", code="unknown_track")
    return key


def stored_if_fresh(source: Session | Engine, *, track: str, kind: str,
                    key: tuple) -> Any | None:
    """The stored ``kind`` result for ``track`` if computed from ``key``; else ``None`` (never
    computes: for callers that must not block, such as the event loop)."""
    with _lock:
        entry = _stored.get(_slot(source, track, kind))
    return entry[1] if entry is not None and entry[0] == key else None


def stored(source: Session | Engine, *, track: str, kind: str, key: tuple,
           compute: Callable[[], T]) -> T:
    """The stored ``kind`` result for ``track`` if computed from ``key``; else compute it."""
    slot = _slot(source, track, kind)
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


def _slot(source: Session | Engine, track: str, kind: str) -> tuple[str, str, str]:
    """Where a result is stored: per database (its URL), track and kind."""
    engine = source if isinstance(source, Engine) else source.get_bind()
    return str(engine.url), track, kind
