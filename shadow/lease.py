"""A database lease: whoever holds it is the only runner scoring until it expires.

Two replicas of ``registry serve`` (or a cron'd ``shadow run`` beside them) each try to take the
lease at the start of a run and renew it as they go; the other one finds it held and stands down.
The unique key on (version, day) is the backstop if a lease ever expires mid-run.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import socket

from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from registry.db import write_session
from registry.models import ShadowLease, utcnow
from registry.store import as_utc

SHADOW_LEASE = "shadow-run"


def new_holder() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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
                lease = ShadowLease(name=name, holder=holder, expires_at=expires)
            elif lease.holder == holder or as_utc(lease.expires_at) <= now:
                lease.holder, lease.expires_at = holder, expires
            else:
                return None
            session.add(lease)
            session.commit()
            return lease
    except IntegrityError:  # another runner inserted it first
        return None


def current_lease(engine: Engine, name: str = SHADOW_LEASE) -> ShadowLease | None:
    with write_session(engine) as session:
        return session.get(ShadowLease, name)


def release_lease(engine: Engine, *, holder: str, name: str = SHADOW_LEASE) -> None:
    with write_session(engine) as session:
        session.exec(delete(ShadowLease).where(ShadowLease.name == name,
                                               ShadowLease.holder == holder))
        session.commit()
