"""Landed-day digests: new days recorded once, a recorded day that changes refused by name."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlmodel import select

from registry.db import read_session
from registry.errors import HistoryChanged
from registry.history import check_history
from registry.models import LandedDay

DAYS = [dt.date(2026, 3, 2) + dt.timedelta(days=k) for k in range(8)]


def digests_of(days: list[dt.date], *, changed: dt.date | None = None) -> dict[dt.date, str]:
    return {day: ("f" if day == changed else "a") * 63 + str(day.day % 10) for day in days}


def recorded(engine, track: str) -> dict[dt.date, str]:
    with read_session(engine) as session:
        return {row.day: row.digest for row in session.exec(
            select(LandedDay).where(LandedDay.track == track))}


def test_new_days_are_recorded_once_and_a_changed_day_is_refused(engine) -> None:
    assert check_history(engine, track="desk", digests=digests_of(DAYS[:5])) == 5
    assert check_history(engine, track="desk", digests=digests_of(DAYS[:5])) == 0
    assert check_history(engine, track="desk", digests=digests_of(DAYS[3:])) == 3  # overlap
    assert check_history(engine, track="other", digests=digests_of(DAYS[:2])) == 2
    assert recorded(engine, "desk") == digests_of(DAYS)

    rewritten = digests_of(DAYS + [DAYS[-1] + dt.timedelta(days=1)], changed=DAYS[4])
    with pytest.raises(HistoryChanged, match=f"the data of {DAYS[4].isoformat()} changed"
                                             " after it was used") as refused:
        check_history(engine, track="desk", digests=rewritten)
    assert refused.value.code == "history_changed"
    assert recorded(engine, "desk") == digests_of(DAYS)  # nothing recorded by a refused run
