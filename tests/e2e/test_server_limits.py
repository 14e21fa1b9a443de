"""A real ``registry serve`` against slow clients and foreign Host headers."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from registry.testing import RegistryServer

pytestmark = pytest.mark.slow
HALF_SENT = 120  # bounded: loopback only, well under the connection limit
SILENT = 30


@pytest.fixture
def serve_with(engine, db_url: str, artefacts_root: Path, tmp_path: Path
               ) -> Iterator[Callable[..., RegistryServer]]:
    """``serve_with(**server_settings)``: a started ``registry serve`` on the test's database."""
    started: list[RegistryServer] = []

    def _serve(**server: Any) -> RegistryServer:
        started.append(RegistryServer(database_url=db_url, artefacts_root=artefacts_root,
                                      workdir=tmp_path, config={"server": server}))
        started[-1].start(healthy=True)
        return started[-1]

    yield _serve
    for server in started:
        server.stop()


def _open(url: str, head: bytes) -> socket.socket:
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    if head:
        sock.sendall(head)
    return sock


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(0.01)
    try:
        return sock.recv(1) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def test_half_sent_requests_are_dropped_while_normal_requests_keep_answering(
        serve_with: Callable[..., RegistryServer]) -> None:
    server = serve_with(public_reads=True, header_timeout_s=2, max_connections=400)
    held = [_open(server.url, b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            for _ in range(HALF_SENT)]
    held += [_open(server.url, b"") for _ in range(SILENT)]
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for _ in range(20):  # answered while every slow connection is still held
                assert client.get("/api/v1/health").status_code == 200
                assert client.get("/api/v1/tracks").status_code == 200
        assert not any(_closed_by_server(sock) for sock in held[:5])  # held, not refused
        deadline = time.monotonic() + 60
        open_ones = list(held)
        while open_ones and time.monotonic() < deadline:
            open_ones = [sock for sock in open_ones if not _closed_by_server(sock)]
            time.sleep(0.1)
        assert not open_ones, f"{len(open_ones)} slow connection(s) still held"
        with httpx.Client(base_url=server.url, timeout=10) as client:
            assert client.get("/api/v1/health").status_code == 200
    finally:
        for sock in held:
            sock.close()


def _answered(sock: socket.socket) -> bytes:
    """One whole answer to a request on ``sock`` (its head and its Content-Length's body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_kept_alive_connection_must_send_its_next_head_in_time(
        serve_with: Callable[..., RegistryServer]) -> None:
    # The keep-alive timeout (idle between requests) is far longer than the head timeout: only
    # the head timer, armed when the second head began, can close this connection in time.
    server = serve_with(public_reads=True, header_timeout_s=1, keep_alive_timeout_s=300)
    request = b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with _open(server.url, request) as sock:
        assert _answered(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(request)  # answered on the same connection
        assert _answered(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        deadline = time.monotonic() + 60
        while not _closed_by_server(sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _closed_by_server(sock), "a half-sent second head held its connection"


def test_a_request_head_is_bounded_in_size(serve_with: Callable[..., RegistryServer]) -> None:
    # The head timeout is far away: only the size bound can end the endless header in time.
    server = serve_with(public_reads=True, header_timeout_s=300)
    long = "v" * 12_000  # a long path, within the bound: answered as usual
    with _open(server.url, f"GET /api/v1/tracks/{long}/champion HTTP/1.1\r\n"
                           "Host: 127.0.0.1\r\n\r\n".encode()) as sock:
        assert _answered(sock).startswith(b"HTTP/1.1 422")
    with _open(server.url, b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ") as sock:
        try:  # a header that never ends: refused once past the bound, not buffered
            for _ in range(64):
                sock.sendall(b"x" * 4096)
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(30)
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:  # closed with our bytes unread: the answer may be lost
            answer = b""
        except TimeoutError:
            pytest.fail("an endless header held its connection")
        assert answer.startswith(b"HTTP/1.1 400") or answer == b"", answer[:200]

def test_a_loopback_server_answers_only_to_loopback_host_names(
        serve_with: Callable[..., RegistryServer]) -> None:
    server = serve_with(public_reads=True)
    port = urlsplit(server.url).port
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}"):
            assert client.get("/api/v1/tracks", headers={"Host": host}).status_code == 200
        for host in (f"evil.example:{port}", "rebind.attacker.test", ""):
            refused = client.get("/api/v1/versions?limit=1", headers={"Host": host})
            assert refused.status_code == 400, (host, refused.text)
            assert refused.json()["code"] == "invalid_host"
            assert "server.allowed_hosts" in refused.json()["detail"]
        spoofed = client.post("/sign-in", headers={"Host": "evil.example",
                                                   "Origin": "http://evil.example"},
                              data={"token": "x"}, follow_redirects=False)
        assert spoofed.status_code == 400 and spoofed.json()["code"] == "invalid_host"
