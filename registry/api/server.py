"""How ``registry serve`` runs uvicorn: bounded against slow and idle clients.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) and answers 503 past a
connection limit (``limit_concurrency``), but waits forever for a request's head: a client that
sends half a request line holds a connection (and a file descriptor) for as long as it likes.
``HeadTimeoutProtocol`` closes a connection whose request line and headers are not complete
``server.header_timeout_s`` after it opened (or after its previous response), so a slowloris
client costs a bounded number of connections for a bounded time while normal requests are
answered as usual.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from registry.config import ServerConfig


class HeadTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request head is late."""

    header_timeout_s = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer: asyncio.TimerHandle | None = None
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # a head in progress (or none yet): the clock runs on
        else:
            self._cancel_head_timer()  # the head is in; the app owns the request from here

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._cancel_head_timer()  # idle keep-alive: uvicorn's own timer closes it

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
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self.transport.close()


def uvicorn_config(app: Any, server: ServerConfig, *, log_level: str = "info",
                   **extra: Any) -> uvicorn.Config:
    """uvicorn's settings from ``server`` (host, port, timeouts, connection limit)."""
    protocol = type("HeadTimeoutProtocol", (HeadTimeoutProtocol,),
                    {"header_timeout_s": server.header_timeout_s})
    return uvicorn.Config(app, host=server.host, port=server.port, log_level=log_level,
                          access_log=False, server_header=False, http=protocol,
                          timeout_keep_alive=server.keep_alive_timeout_s,
                          limit_concurrency=server.max_connections, **extra)
