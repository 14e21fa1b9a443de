"""The demo's API server: uvicorn in a thread, on a socket bound before the long steps run, with
the same host check, timeouts and connection limit as ``registry serve``
(``registry.api.server.uvicorn_config``)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

from registry.config import ServerConfig
from registry.console import fail


class ThreadedServer:
    """uvicorn in a thread on an already-bound socket; the main thread keeps Ctrl-C.

    The main thread waits on an event, never in ``Thread.join``: a KeyboardInterrupt inside
    ``join`` can leave the thread looking finished while it still runs (CPython gh-90882).
    """

    def __init__(self, app: Any, listener: socket.socket, server: ServerConfig) -> None:
        import uvicorn

        from registry.api.server import uvicorn_config

        self.server = uvicorn.Server(uvicorn_config(
            app, server, log_level="warning", lifespan="on", timeout_graceful_shutdown=5))
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(listener,),
                                       name="podium-demo-server", daemon=True)

    def _run(self, listener: socket.socket) -> None:
        try:
            self.server.run(sockets=[listener])
        finally:
            self.done.set()

    def start(self, timeout: float = 60.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self.done.is_set() or time.monotonic() > deadline:
                self.stop()
                raise fail("the API server did not start (see the messages above)")
            time.sleep(0.05)

    def wait(self) -> None:
        while not self.done.is_set():
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop serving; the app's shutdown stops the shadow job after its running tick."""
        self.server.should_exit = True
        if self.thread.is_alive() or not self.done.is_set():
            self.done.wait(60)


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind now, so a busy port fails before minutes of work (uvicorn listens on it later)."""
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(info[0], socket.SOCK_STREAM)
    except OSError as exc:
        raise fail(f"cannot listen on {host}:{port}: {exc}", exit_code=2) from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(info[4])
    except OSError as exc:
        sock.close()
        raise fail(f"cannot listen on {host}:{port} ({exc.strerror}): pass --port PORT "
                   "(0 picks a free one)") from None
    return sock


def url_host(host: str) -> str:
    """``host`` as it goes in a URL a browser on this machine can open."""
    if host in ("0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
