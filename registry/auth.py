"""Bearer tokens: shown once, stored as a SHA-256 digest; scopes read ⊂ promote ⊂ admin.

A token is 32 random bytes (``secrets.token_urlsafe``) behind a ``pod_`` prefix, so its digest
is a safe lookup key: the database is searched by digest, and the row found is compared again
with ``hmac.compare_digest``. The clear token is printed once by ``registry token create`` and
never stored, logged or echoed. ``registry token revoke`` stamps ``revoked_at``: the row stays
(so its name stays taken) and ``authenticate`` refuses the token from then on.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from registry.errors import (
    AlreadyExists,
    Forbidden,
    InvalidInput,
    InvalidTransition,
    NotFound,
    Unauthorized,
)
from registry.ids import validate_slug
from registry.models import SCOPES, ApiToken, utcnow
from registry.store import as_utc

TOKEN_PREFIX = "pod_"
log = logging.getLogger("registry.auth")
RANK = {scope: rank for rank, scope in enumerate(SCOPES, start=1)}
MAX_TOKEN_CHARS = 256


@dataclass(frozen=True)
class Principal:
    """The caller: a token's name (the audit ``actor``), scope and id (None: anonymous)."""

    name: str
    scope: str
    token_id: int | None = None

    def allows(self, scope: str) -> bool:
        return RANK.get(self.scope, 0) >= RANK[scope]


ANONYMOUS = Principal(name="anonymous", scope="read", token_id=None)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def create_token(session: Session, *, name: str, scope: str) -> tuple[ApiToken, str]:
    """Store a new token's digest; return the row and the clear token (shown once)."""
    validate_slug(name, what="token name")
    if scope not in RANK:
        raise InvalidInput(f"unknown scope {scope!r}; scopes are {', '.join(SCOPES)}",
                           code="invalid_scope")
    token = new_token()
    row = ApiToken(name=name, scope=scope, token_hash=hash_token(token), created_at=utcnow())
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyExists(f"a token named {name!r} already exists",
                            code="token_exists") from None
    return row, token


def list_tokens(session: Session) -> list[ApiToken]:
    """Every token, revoked ones included, ordered by name (rows carry digests, never tokens)."""
    return list(session.exec(select(ApiToken).order_by(ApiToken.name)))


def revoke_token(session: Session, name: str) -> ApiToken:
    """Stamp ``revoked_at`` on the token called ``name`` and commit; return the row.

    ``NotFound`` for an unknown name; ``InvalidTransition`` (nothing changed) if it is already
    revoked. The row is locked while it is checked, so two concurrent revocations cannot both
    succeed. Servers keep a valid token in their ``TokenCache`` for at most its ``ttl``, so a
    revoked token stops working there within that time.
    """
    row = session.exec(select(ApiToken).where(ApiToken.name == name).with_for_update()).first()
    if row is None:
        raise NotFound(f"no token named {name!r}", code="token_not_found")
    if row.revoked_at is not None:
        raise InvalidTransition(f"the token {name!r} is already revoked (since "
                                f"{as_utc(row.revoked_at):%Y-%m-%d %H:%M:%S} UTC)",
                                code="token_revoked")
    row.revoked_at = utcnow()
    session.add(row)
    session.commit()
    return row


def authenticate(session: Session, token: str) -> Principal:
    """The principal behind a bearer token, or ``Unauthorized``."""
    if not token or len(token) > MAX_TOKEN_CHARS or not token.startswith(TOKEN_PREFIX):
        raise Unauthorized("invalid or missing bearer token", code="invalid_token")
    digest = hash_token(token)
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == digest)).first()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(
            row.token_hash, digest):
        raise Unauthorized("invalid or missing bearer token", code="invalid_token")
    return Principal(name=row.name, scope=row.scope, token_id=row.id)


def require_scope(principal: Principal, scope: str) -> Principal:
    if not principal.allows(scope):
        raise Forbidden(f"this needs the {scope!r} scope; the token {principal.name!r} has "
                        f"{principal.scope!r}", code="insufficient_scope")
    return principal


class TokenCache:
    """Valid tokens seen in the last ``ttl`` seconds, keyed by digest (never the clear token).

    Keeps the consumers' hot path at one query. Misses are not cached, so a new token works at
    once; a revoked one stops working within ``ttl``.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 1024) -> None:
        self.ttl, self.max_entries = ttl, max_entries
        self._entries: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def get(self, token: str) -> Principal | None:
        key = hash_token(token)
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, token: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[hash_token(token)] = (time.monotonic() + self.ttl, principal)


class FailedAuthLog:
    """Log failed authentications with the client's address, rate-limited.

    One WARNING per address per ``window`` seconds, the next one saying how many failures were
    not logged in between; at most ``max_lines`` lines per window in all (then one line saying
    that more were dropped), so a flood of bad tokens, from one address or many, cannot flood
    the log. The token itself is never logged.
    """

    def __init__(self, window: float = 60.0, max_lines: int = 100,
                 max_addresses: int = 10_000) -> None:
        self.window, self.max_lines, self.max_addresses = window, max_lines, max_addresses
        self._seen: dict[str, tuple[float, int]] = {}  # address -> (last logged, unlogged)
        self._window_start, self._lines, self._dropped = 0.0, 0, 0
        self._lock = threading.Lock()

    def record(self, address: str, *, code: str, request: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= self.window:
                if self._dropped:
                    log.warning("failed authentication: %d more from other addresses were not "
                                "logged in the last %.0f s", self._dropped, self.window)
                self._window_start, self._lines, self._dropped = now, 0, 0
            last, unlogged = self._seen.get(address, (None, 0))
            if last is not None and now - last < self.window:
                self._seen[address] = (last, unlogged + 1)
                return
            if self._lines >= self.max_lines:
                self._dropped += 1
                return
            if len(self._seen) >= self.max_addresses:
                self._seen.clear()
            self._seen[address] = (now, 0)
            self._lines += 1
        more = (f" ({unlogged} more from this address since its last line)" if unlogged
                else "")
        log.warning("failed authentication from %s: %s on %s%s", address, code, request, more)
