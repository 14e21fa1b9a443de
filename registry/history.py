"""History never changes silently: each landed day's digest is recorded when a shadow run first
uses it, and whatever later reads that day again (the next run, the zoo training on a window
that holds it) compares its content with the record and refuses the track, naming the day. Settled
scores are never recomputed, so what was scored stays what was seen.

A run compares every day it reads with what was recorded (one query over the window) and
records only the days that are new. Both are plain Core statements, the insert sent through
the driver (:func:`registry.db.insert_columns`): a backfill's first run records hundreds of
days, and building an ORM object (or a parameter dict) per day cost more than the rest of the
check together.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from registry.db import insert_columns, read_session, write_session
from registry.errors import HistoryChanged
from registry.models import LandedDay, utcnow

MAX_NAMED_DAYS = 5
_LANDED = LandedDay.__table__
_INSERT = insert(_LANDED)


def verify_history(engine: Engine, *, track: str, digests: dict[dt.date, str]) -> None:
    """Raise :class:`HistoryChanged` if a day of ``digests`` recorded for ``track`` had other
    content; record nothing."""
    if digests:
        with read_session(engine) as session:
            _refuse_changed(track, digests, _recorded(session, track, digests))


def check_history(engine: Engine, *, track: str, digests: dict[dt.date, str]) -> int:
    """Compare ``digests`` with those recorded for ``track``; record the new days (returned:
    how many). Raise :class:`HistoryChanged` if a recorded day's content differs."""
    if not digests:
        return 0
    with write_session(engine) as session:
        recorded = _recorded(session, track, digests)
        _refuse_changed(track, digests, recorded)
        new = sorted((day, digest) for day, digest in digests.items() if day not in recorded)
        if not new:
            return 0
        try:
            insert_columns(session.connection(), _INSERT, {
                "track": track, "day": [day for day, _ in new],
                "digest": [digest for _, digest in new], "recorded_at": utcnow()}, rows=len(new))
            session.commit()
        except IntegrityError:  # another runner recorded them first; the next run compares
            session.rollback()
            return 0
    return len(new)


def _recorded(session: Session, track: str, digests: dict[dt.date, str]) -> dict[dt.date, str]:
    first, last = min(digests), max(digests)
    return dict(session.execute(
        select(_LANDED.c.day, _LANDED.c.digest).where(
            _LANDED.c.track == track, _LANDED.c.day >= first, _LANDED.c.day <= last)).all())


def _refuse_changed(track: str, digests: dict[dt.date, str],
                    recorded: dict[dt.date, str]) -> None:
    changed = sorted(day for day, digest in digests.items()
                     if recorded.get(day, digest) != digest)
    if not changed:
        return
    named = ", ".join(day.isoformat() for day in changed[:MAX_NAMED_DAYS])
    more = f" and {len(changed) - MAX_NAMED_DAYS} more" if len(changed) > MAX_NAMED_DAYS else ""
    raise HistoryChanged(
        f"track {track!r}: the data of {named}{more} changed after it was used; landed history "
        "must not be rewritten (restore the day as it was, or land corrections as new days)",
        days=[day.isoformat() for day in changed])
