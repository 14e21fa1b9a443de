"""Who is calling: a bearer token read from the request and checked against the token table.

The one place a request's token becomes a ``Principal``. The API reads the token from the
``Authorization: Bearer`` header (``bearer_scheme`` documents it in OpenAPI); the leaderboard
page also accepts its sign-in cookie and passes that token here. A token seen in the last few
seconds is answered from the app's ``TokenCache`` without the database; ``cached_principal``
lets the consumers' hot path ask the cache first, on the event loop, and ``caller`` goes to the
token table on a miss. Without a token, a read (GET or HEAD) is anonymous when
``server.public_reads`` is on; anything else is 401.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from registry.auth import ANONYMOUS, Principal, TokenCache, authenticate, hash_token
from registry.db import read_session
from registry.errors import Unauthorized

bearer_scheme = HTTPBearer(auto_error=False, scheme_name="bearer",
                           description="a token from `registry token create`")


def _documented_token(credentials: Annotated[HTTPAuthorizationCredentials | None,
                                             Depends(bearer_scheme)]) -> str | None:
    return credentials.credentials if credentials else None


BearerToken = Annotated[str | None, Depends(_documented_token)]  # in OpenAPI as "bearer"


def bearer_token(request: Request) -> str | None:
    """The token in the ``Authorization: Bearer`` header, if there is one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def cached_principal(request: Request, token: str | None) -> Principal | None:
    """The caller without touching the database, or None when the database must be asked."""
    if token is None:
        return anonymous_or_refused(request)
    cache: TokenCache = request.app.state.token_cache
    return cache.get(token)


async def caller(request: Request, token: str | None) -> Principal:
    """The caller, from a route on the event loop: the token cache first; on a miss, the token
    table in the thread pool, once per token however many requests bring it meanwhile. When a
    cache entry expires every connection using that token misses at once; one lookup serves
    them all, rather than a thread and a session each contending with the event loop."""
    principal = cached_principal(request, token)
    if principal is not None:
        return principal
    assert token is not None  # no token is answered by ``cached_principal``
    lookups: dict[str, asyncio.Future[Principal]] = request.app.state.token_lookups
    key = hash_token(token)
    lookup = lookups.get(key)
    if lookup is None:
        lookup = lookups[key] = asyncio.ensure_future(
            run_in_threadpool(identify_caller, request, token))

        def done(finished: asyncio.Future[Principal]) -> None:
            del lookups[key]
            if not finished.cancelled():
                finished.exception()  # retrieved here too: its waiters may all have gone

        lookup.add_done_callback(done)
    return await asyncio.shield(lookup)  # a waiter that goes cancels only its own wait


def identify_caller(request: Request, token: str | None) -> Principal:
    """The principal behind ``token`` (cache first, then the token table), or ``Unauthorized``.

    Blocking on a cache miss: call it from a thread, never on the event loop."""
    principal = cached_principal(request, token)
    if principal is None:
        assert token is not None  # no token is answered by ``cached_principal``
        with read_session(request.app.state.engine) as session:
            principal = authenticate(session, token)
        request.app.state.token_cache.put(token, principal)
    return principal


def anonymous_or_refused(request: Request) -> Principal:
    """A caller without a token: anonymous for a read on an open server, else 401."""
    if request.method in ("GET", "HEAD") and request.app.state.config.server.public_reads:
        return ANONYMOUS
    raise Unauthorized("a bearer token is required (Authorization: Bearer <token>)",
                       code="missing_token")
