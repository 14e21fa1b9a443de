"""Pure ASGI middleware: request ids, the body-size limit and the request log.

Pure ASGI (not ``BaseHTTPMiddleware``) so that streaming and the hot path pay nothing extra.
The request log has the method, the path, the status, the time and the request id: never a
header, a query string or a body, so no token can reach it. The path is logged quoted, with
control characters escaped and cut at ``LOGGED_PATH_CHARS``, so a request can neither forge a
log line nor fill the disk. Reads that succeed are logged at DEBUG (consumers poll the
champion; a log line costs more than answering them), every write and every error at INFO.

A path with a control character (``%0a``, ``%00``…) names nothing: it is answered 404 before
routing, because a route pattern's ``$`` would match before a final newline.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.api.problems import loggable_path, problem_response
from registry.errors import NotFound, PayloadTooLarge, PodiumError

log = logging.getLogger("registry.api")
REQUEST_ID_HEADER = b"x-request-id"
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_READS = frozenset({"GET", "HEAD"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def new_request_id() -> str:
    """128 random bits in hex. Unique, not secret: drawn in memory (``random``, reseeded in a
    forked worker), not from os.urandom, a system call on every request during which the event
    loop gives up the GIL to whichever thread wants it."""
    return f"{random.getrandbits(128):032x}"


def request_id_of(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


class RequestContextMiddleware:
    """Give every request an id (the client's if sane), echo it, and log the request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = ""
        for name, value in scope["headers"]:  # the last one wins, as in a dict
            if name == REQUEST_ID_HEADER:
                sent = value.decode("latin-1")
        request_id = sent if sent and _SANE_ID.fullmatch(sent) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        app = self.app if not _CONTROL.search(scope["path"]) else _control_in_path

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() != REQUEST_ID_HEADER]
                headers.append((REQUEST_ID_HEADER, request_id.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            level = logging.DEBUG if status < 400 and scope["method"] in _READS else logging.INFO
            if log.isEnabledFor(level):  # the path is made loggable only for a line written
                log.log(level, "%s %s %d %.1fms rid=%s", scope["method"],
                        loggable_path(scope["path"]), status,
                        (time.perf_counter() - started) * 1000, request_id)


async def _control_in_path(scope: Scope, receive: Receive, send: Send) -> None:
    shown = loggable_path(scope["path"], limit=60)
    error = NotFound(f"no such endpoint: the path {shown} has a control character")
    await problem_response(error, request_id=request_id_of(scope))(scope, receive, send)


class _TooLarge(HTTPException):
    """Raised from ``receive``: an HTTPException, so FastAPI's body parsing lets it through."""

    def __init__(self) -> None:
        super().__init__(status_code=413)


class BodyLimitMiddleware:
    """Refuse bodies over ``max_bytes`` with 413: by Content-Length, and by bytes streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = chunked = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding":
                chunked = value
        if declared is not None:
            try:
                too_big = int(declared) > self.max_bytes
            except ValueError:
                too_big = True
            if too_big:
                await self._refuse(scope, receive, send)
                return
        if chunked is None:  # HTTP/1.1: a body has a Content-Length (checked) or is chunked
            await self.app(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = PayloadTooLarge(f"the request body is over the limit of {self.max_bytes} bytes")
        response = problem_response(error, request_id=request_id_of(scope))
        await response(scope, receive, send)


class InvalidHost(PodiumError):
    code, status, title = "invalid_host", 400, "Invalid Host header"


class AllowedHostsMiddleware:
    """Serve only requests whose Host header is allowed (``server.allowed_hosts``).

    The Host header flows into absolute URLs (``next`` links) and the page's sign-in checks
    its Origin against it: a DNS-rebinding page reaching a loopback server names its own host,
    and is answered 400 ``invalid_host`` before any route runs. ``*`` allows any host,
    ``*.example.com`` any subdomain of example.com.
    """

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.any = "*" in allowed
        self.exact = frozenset(h.lower() for h in allowed if not h.startswith("*"))
        self.suffixes = tuple(h[1:].lower() for h in allowed if h.startswith("*."))

    def allows(self, host: str) -> bool:
        host = host.lower()
        if host.startswith("["):  # [::1]:8000
            host = host[1:].partition("]")[0]
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        return host in self.exact or host.endswith(self.suffixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.any or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = ""
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
        if self.allows(host):
            await self.app(scope, receive, send)
            return
        error = InvalidHost(f"the Host header {json.dumps(host[:100])} is not one this server "
                            "answers to (server.allowed_hosts)")
        await problem_response(error, request_id=request_id_of(scope))(scope, receive, send)


def cors_kwargs(origins: tuple[str, ...]) -> dict[str, Any]:
    return {"allow_origins": list(origins), "allow_methods": ["GET", "POST"],
            "allow_headers": ["Authorization", "Content-Type", "Idempotency-Key",
                              "X-Request-ID", "If-None-Match"],
            "expose_headers": ["X-Request-ID", "ETag"]}
