"""A database lease: whoever holds it is the only runner scoring until it expires.

Two replicas of ``registry serve`` (or a cron'd ``shadow run`` beside them) each try to take the
lease at the start of a run; the other one finds it held and stands down. The holder renews it
on a heartbeat (``LeaseHeartbeat``: a beat every third of ``lease_seconds``), so a long run keeps
it however slow a version is, and a runner killed with ``kill -9`` stops beating: its lease
expires after three missed beats and the next run takes it over. The row says who holds it
(host, pid, since). The unique key on (version, day) is the backstop if a lease ever expires
mid-run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
import threading
from dataclasses import dataclass

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import select

from registry.db import write_session
from registry.models import ShadowLease, utcnow
from registry.store import as_utc

SHADOW_LEASE = "shadow-run"
MISSED_BEATS = 3  # a lease not renewed for this many beats has expired
log = logging.getLogger("shadow.lease")


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease: the host and process that took it, when, and until when."""

    host: str
    pid: str
    since: dt.datetime | None
    expires_at: dt.datetime

    def describe(self) -> str:
        since = f"since {self.since:%Y-%m-%d %H:%M:%S} UTC, " if self.since else ""
        return (f"host {self.host}, pid {self.pid}, {since}"
                f"expires {self.expires_at:%Y-%m-%d %H:%M:%S} UTC unless renewed")


def acquire_lease(engine: Engine, *, holder: str, seconds: float,
                  name: str = SHADOW_LEASE) -> ShadowLease | None:
    """Take (or renew) the lease; return it, or None when someone else holds it."""
    now = utcnow()
    expires = now + dt.timedelta(seconds=seconds)
    try:
        with write_session(engine) as session:
            lease = session.exec(select(ShadowLease).where(ShadowLease.name == name)
                                 .with_for_update()).first()
            if lease is None:
                lease = ShadowLease(name=name, holder=holder, expires_at=expires, acquired_at=now)
            elif lease.holder == holder:
                lease.expires_at = expires
            elif as_utc(lease.expires_at) <= now:
                lease.holder, lease.expires_at, lease.acquired_at = holder, expires, now
            else:
                return None
            session.add(lease)
            session.commit()
            session.refresh(lease)
            return lease
    except IntegrityError:  # another runner inserted it first
        return None


def current_lease(engine: Engine, name: str = SHADOW_LEASE) -> ShadowLease | None:
    with write_session(engine) as session:
        return session.get(ShadowLease, name)


def lease_holder(engine: Engine, name: str = SHADOW_LEASE) -> LeaseHolder | None:
    """Who holds the lease now (None when nobody does, or it has expired)."""
    lease = current_lease(engine, name)
    if lease is None or as_utc(lease.expires_at) <= utcnow():
        return None
    host, _, rest = lease.holder.rpartition(":")[0].rpartition(":")
    return LeaseHolder(host=host or lease.holder, pid=rest or "?",
                       since=as_utc(lease.acquired_at), expires_at=as_utc(lease.expires_at))


def release_lease(engine: Engine, *, holder: str, name: str = SHADOW_LEASE) -> None:
    with write_session(engine) as session:
        session.exec(delete(ShadowLease).where(ShadowLease.name == name,
                                               ShadowLease.holder == holder))
        session.commit()


class LeaseHeartbeat:
    """Renew a held lease every ``seconds / MISSED_BEATS`` on a daemon thread until stopped.

    ``lost`` turns true when a beat finds the lease taken by another holder (it had expired):
    the runner checks it between versions. A beat that cannot reach the database is only a
    missed beat; the next one tries again.
    """

    def __init__(self, engine: Engine, *, holder: str, seconds: float,
                 name: str = SHADOW_LEASE) -> None:
        self.engine, self.holder, self.seconds, self.name = engine, holder, seconds, name
        self.interval = seconds / MISSED_BEATS
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{name}", daemon=True)

    def start(self) -> LeaseHeartbeat:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                renewed = acquire_lease(self.engine, holder=self.holder, seconds=self.seconds,
                                        name=self.name)
            except SQLAlchemyError as exc:
                log.warning("lease %s: a heartbeat missed (%s)", self.name, type(exc).__name__)
                continue
            if renewed is None:
                log.warning("lease %s: taken over by another runner; this one stops", self.name)
                self.lost = True
                return
