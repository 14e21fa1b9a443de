"""``Idempotency-Key``: a retried mutating request gets the first answer, stored in the database.

Keys are scoped to the token. The first request claims the key (a row with no answer yet) in its
own transaction, runs, then stores its answer: the 200 body or the domain error's problem JSON.
A retry with the same key and the same request gets that answer again (header
``Idempotent-Replayed: true``); the same key with another request is a 422; a retry while the
first is still running is a 409 ``idempotency_in_progress``. An unexpected failure or an outage
releases the key, so the client's retry runs for real.

A claim names the server instance that took it (``host:pid:nonce``). A server that crashed
mid-request leaves a claim with no answer: when it was taken on this host by a process that is
gone, or by an earlier instance under this very pid (a restarted container), the retry takes
it over at once, runs, and says so (header ``Idempotency-Taken-Over`` naming the dead instance,
and a warning in the log). A claim from another host is taken over once it is older than any
request runs (``ABANDONED_AFTER``), since a replica there may still be answering it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from sqlalchemy import Engine, delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from registry.api.problems import PROBLEM_JSON
from registry.auth import Principal
from registry.db import write_session
from registry.errors import InvalidInput, PodiumError, RequestInProgress, Unavailable
from registry.models import IdempotencyRecord, utcnow

log = logging.getLogger("registry.api")
KEY_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
# The header every retry-safe write route takes (one definition, one OpenAPI description).
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key",
                                              description="retry-safe key, scoped to the token",
                                              json_schema_extra={"pattern": KEY_PATTERN})]
_KEY = re.compile(KEY_PATTERN)
ABANDONED_AFTER = dt.timedelta(minutes=10)  # no request runs this long: its server died
TAKEN_OVER_HEADER = "Idempotency-Taken-Over"
_NONCE = secrets.token_hex(4)


def this_instance() -> str:
    """This server process: ``host:pid:nonce`` (a forked child has its own pid)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_NONCE}"


def instance_is_gone(instance: str | None) -> bool:
    """True when ``instance`` ran on this host and is certainly dead; False when it may live."""
    host, _, rest = (instance or "").partition(":")
    pid_text, _, nonce = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return nonce != _NONCE  # an earlier process under this pid (a restarted container)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # alive, but not ours to signal
        return False
    return False


def request_fingerprint(method: str, path: str, body: dict[str, Any]) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def run_idempotent(engine: Engine, *, key: str | None, principal: Principal, fingerprint: str,
                   action: Callable[[], dict[str, Any]], request_id: str | None = None
                   ) -> JSONResponse:
    """Run ``action`` (returning the 200 body) once per (token, key).

    A replayed problem carries ``request_id``, the id of the request being answered (as every
    problem does); a replayed 200 is the first answer as it was.
    """
    if key is None:
        return JSONResponse(action())
    if not _KEY.fullmatch(key):
        raise InvalidInput("Idempotency-Key must be 1-128 of A-Z a-z 0-9 . _ : -",
                           code="invalid_idempotency_key")
    token_id = principal.token_id
    assert token_id is not None  # mutating routes need a token
    replay = _claim(engine, token_id=token_id, key=key, fingerprint=fingerprint,
                    request_id=request_id)
    headers: dict[str, str] = {}
    if isinstance(replay, _TakenOver):
        headers[TAKEN_OVER_HEADER] = replay.instance
    elif replay is not None:
        return replay
    try:
        body = action()
    except PodiumError as error:
        if isinstance(error, Unavailable):
            _release(engine, token_id=token_id, key=key)
            raise
        _store(engine, token_id=token_id, key=key, status=error.status, body=error.problem())
        raise
    except BaseException:
        _release(engine, token_id=token_id, key=key)
        raise
    _store(engine, token_id=token_id, key=key, status=200, body=body)
    return JSONResponse(body, headers=headers)


class _TakenOver:
    """The claim of a dead server instance, now this one's: the request runs for real."""

    def __init__(self, instance: str) -> None:
        self.instance = instance


def _claim(engine: Engine, *, token_id: int, key: str, fingerprint: str,
           request_id: str | None) -> JSONResponse | _TakenOver | None:
    with write_session(engine) as session:
        existing = session.get(IdempotencyRecord, (token_id, key), with_for_update=True)
        if existing is not None and _abandoned(existing, fingerprint):
            dead = existing.claimed_by or "unknown"
            existing.created_at = utcnow()  # its server died mid-request: this retry runs
            existing.claimed_by = this_instance()
            session.add(existing)
            session.commit()
            log.warning("Idempotency-Key %r: the request claimed by server instance %s, which "
                        "died before answering, is taken over and run again by %s", key, dead,
                        this_instance())
            return _TakenOver(dead)
        if existing is None:
            session.add(IdempotencyRecord(token_id=token_id, key=key, request_hash=fingerprint,
                                          claimed_by=this_instance()))
            try:
                session.commit()
                return None
            except IntegrityError:  # a concurrent first request won the claim
                session.rollback()
                existing = session.get(IdempotencyRecord, (token_id, key))
                if existing is None:
                    raise RequestInProgress("a request with this Idempotency-Key is running; "
                                            "retry shortly") from None
        return _replay(existing, fingerprint, request_id)


def _abandoned(record: IdempotencyRecord, fingerprint: str) -> bool:
    """A claim with no answer whose server instance is gone, or older than any request runs."""
    if record.status_code is not None or record.request_hash != fingerprint:
        return False
    created = (record.created_at if record.created_at.tzinfo
               else record.created_at.replace(tzinfo=dt.UTC))
    return instance_is_gone(record.claimed_by) or utcnow() - created > ABANDONED_AFTER


def _replay(record: IdempotencyRecord, fingerprint: str, request_id: str | None
            ) -> JSONResponse:
    if record.request_hash != fingerprint:
        raise InvalidInput("this Idempotency-Key was used for a different request; use a new "
                           "key for a new request", code="idempotency_key_reused")
    if record.status_code is None:
        raise RequestInProgress("a request with this Idempotency-Key is still running on server "
                                f"instance {record.claimed_by or 'unknown'}; retry shortly")
    if record.status_code < 400:
        body, media = record.response, "application/json"
    else:
        body, media = {**(record.response or {}), "request_id": request_id}, PROBLEM_JSON
    return JSONResponse(body, status_code=record.status_code, media_type=media,
                        headers={"Idempotent-Replayed": "true"})


def _store(engine: Engine, *, token_id: int, key: str, status: int, body: dict[str, Any]
           ) -> None:
    with write_session(engine) as session:
        record = session.get(IdempotencyRecord, (token_id, key))
        if record is not None:
            record.status_code, record.response = status, body
            session.add(record)
            session.commit()


def _release(engine: Engine, *, token_id: int, key: str) -> None:
    try:
        with write_session(engine) as session:
            _delete(session, token_id, key)
            session.commit()
    except Exception:  # the outage that made us release may still be on; the key then stays
        log.warning("could not release Idempotency-Key %r; a retry will answer 409 "
                    "idempotency_in_progress", key)


def _delete(session: Session, token_id: int, key: str) -> None:
    session.exec(delete(IdempotencyRecord).where(IdempotencyRecord.token_id == token_id,
                                                 IdempotencyRecord.key == key))
