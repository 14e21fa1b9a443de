"""How ``registry serve`` runs uvicorn: httptools, bounded against slow and idle clients.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and answers 503 past a
connection limit (``limit_concurrency``), but waits forever for a request's head: a client that
sends half a request line holds a connection (and a file descriptor) for as long as it likes.
``HeadTimeoutProtocol`` closes a connection whose request line and headers are not complete
``server.header_timeout_s`` after it opened (or after the head began, on a kept-alive
connection), so a slowloris client costs a bounded number of connections for a bounded time
while normal requests are answered as usual. It also bounds a head's size (``MAX_HEAD_BYTES``,
h11's limit): llhttp itself keeps a header it is still receiving in memory, however long.

The protocol is uvicorn's httptools one (llhttp, in C): parsing a request and writing its
answer there costs a fraction of what the pure-Python h11 protocol costs, and every request the
event loop parses faster is time given back to the consumers' champion endpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from registry.config import ServerConfig

MAX_HEAD_BYTES = 16 * 1024  # a request line and headers; as h11 allows


class HeadTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose request head is late or huge.

    The head timer runs from the connection's start, and from the first byte of each further
    request (``on_message_begin``), until the head is in (``on_headers_complete``); between
    requests the connection is idle and uvicorn's keep-alive timer closes it."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes = 0  # received since the last head or message ended
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        self._head_bytes += len(data)
        super().data_received(data)
        if (self._head_timer is not None and self._head_bytes > MAX_HEAD_BYTES
                and not self.transport.is_closing()):
            self._cancel_head_timer()
            self.send_400_response("Request head too large.")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm_head_timer()  # a head in progress: the clock runs

    def on_headers_complete(self) -> None:
        self._cancel_head_timer()  # the head is in; the app owns the request from here
        self._head_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._head_bytes = 0
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def _arm_head_timer(self) -> None:
        if self._head_timer is None:
            self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            self.transport.close()


def uvicorn_config(app: Any, server: ServerConfig, *, log_level: str = "info",
                   **extra: Any) -> uvicorn.Config:
    """uvicorn's settings from ``server`` (host, port, timeouts, connection limit); the event
    loop is uvloop's (``loop="auto"`` picks it when installed, as it is with Podium)."""
    protocol = type("HeadTimeoutProtocol", (HeadTimeoutProtocol,),
                    {"header_timeout_s": server.header_timeout_s})
    return uvicorn.Config(app, host=server.host, port=server.port, log_level=log_level,
                          access_log=False, server_header=False, http=protocol,
                          timeout_keep_alive=server.keep_alive_timeout_s,
                          limit_concurrency=server.max_connections, loop="auto", **extra)
