"""Webhooks against real HTTP receivers on loopback: signed, retried, never blocking a promotion."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from registry.api.webhooks import SIGNATURE_HEADER, verify_signature
from tests.api.conftest import API, TRACK

SECRET = "s3cret-for-tests"
FAST = {"timeout_s": 0.5, "backoff_s": 0.05, "poll_s": 0.05, "max_attempts": 3}


class Receiver:
    """A loopback HTTP endpoint answering with ``statuses`` in turn (the last one repeats)."""

    def __init__(self, statuses: list[int], *, hang_s: float = 0.0) -> None:
        self.statuses, self.hang_s = list(statuses), hang_s
        self.requests: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                if receiver.hang_s:
                    time.sleep(receiver.hang_s)
                status = receiver.statuses.pop(0) if len(receiver.statuses) > 1 else \
                    receiver.statuses[0]
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def _make(statuses: list[int], **kw: float) -> Receiver:
        made.append(Receiver(statuses, **kw))
        return made[-1]

    yield _make
    for receiver in made:
        receiver.close()


def _hooked_client(make_client, monkeypatch, *urls: str, **options: float):
    monkeypatch.setenv("PODIUM_TEST_HOOK_SECRET", SECRET)
    hooks = [{"url": url, "secret_env": "PODIUM_TEST_HOOK_SECRET"} for url in urls]
    return make_client(webhooks=hooks, webhook_options={**FAST, **options})


def _wait_for(predicate: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def _promote(client, auth, version_id: str) -> None:
    response = client.post(f"{API}/versions/{version_id}/promote", headers=auth("admin"),
                           json={"reason": "ship it", "force": True})
    assert response.status_code == 200, response.text


def _deliveries(client, auth, *, kind: str = "version.promoted") -> list[dict]:
    events = client.get(f"{API}/events", headers=auth("admin")).json()["items"]
    event = next(e for e in events if e["kind"] == kind)
    return client.get(f"{API}/events/{event['id']}/deliveries", headers=auth("admin")).json()


def _settled(client, auth) -> list[dict] | None:
    rows = _deliveries(client, auth)
    return rows if rows and all(r["state"] != "pending" for r in rows) else None


def test_events_are_delivered_signed(make_client, monkeypatch, receivers, auth,
                                     register) -> None:
    receiver = receivers([200])
    version_id = register("v1-linear")  # before the server: history is not replayed
    client = _hooked_client(make_client, monkeypatch, receiver.url)
    _promote(client, auth, version_id)
    rows = _wait_for(lambda: _settled(client, auth))
    assert [(r["state"], r["attempts"], r["last_status"]) for r in rows] == [
        ("delivered", 1, 200)]
    headers, body = receiver.requests[0]
    assert verify_signature(SECRET, body, headers[SIGNATURE_HEADER])
    assert not verify_signature("wrong", body, headers[SIGNATURE_HEADER])
    event = json.loads(body)
    assert event["type"] == "version.promoted" and event["version_id"] == version_id
    assert event["track"] == TRACK and event["actor"] == "admin-bot" and event["forced"]
    assert headers["X-Podium-Event"] == "version.promoted"
    assert headers["X-Podium-Event-Id"] == str(event["id"])
    assert SECRET not in body.decode()


def test_a_failing_endpoint_is_retried_with_backoff(make_client, monkeypatch, receivers, auth,
                                                    register) -> None:
    receiver = receivers([500, 200])
    version_id = register("v1-linear")
    client = _hooked_client(make_client, monkeypatch, receiver.url)
    _promote(client, auth, version_id)
    rows = _wait_for(lambda: _settled(client, auth))
    assert [(r["state"], r["attempts"], r["last_status"], r["last_error"]) for r in rows] == [
        ("delivered", 2, 200, None)]
    assert len(receiver.requests) == 2
    assert receiver.requests[0][1] == receiver.requests[1][1]  # the same signed body


def test_a_hanging_or_dead_endpoint_never_blocks_a_promotion(make_client, monkeypatch,
                                                             receivers, auth,
                                                             register) -> None:
    hanging, healthy = receivers([200], hang_s=3.0), receivers([200])
    with socket.socket() as probe:  # a port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    first, second = register("v1-a"), register("v2-b")
    client = _hooked_client(make_client, monkeypatch, hanging.url, dead, healthy.url,
                            max_attempts=2)
    _promote(client, auth, first)
    _promote(client, auth, second)  # answered while the hanging endpoint still hangs
    champion = client.get(f"{API}/tracks/{TRACK}/champion", headers=auth("read")).json()
    assert champion["version_id"] == second
    rows = _wait_for(lambda: _settled(client, auth))
    by_url = {r["url"]: r for r in rows}
    assert by_url[healthy.url]["state"] == "delivered"
    assert by_url[hanging.url]["state"] == "failed"
    assert "timed out" in by_url[hanging.url]["last_error"]
    assert by_url[dead]["state"] == "failed" and by_url[dead]["attempts"] == 2
    assert by_url[dead]["last_error"].startswith("ConnectError")


def test_a_missing_secret_fails_the_delivery_not_the_promotion(make_client, monkeypatch,
                                                               receivers, auth,
                                                               register) -> None:
    receiver = receivers([200])
    version_id = register("v1-linear")
    client = make_client(webhooks=[{"url": receiver.url, "secret_env": "PODIUM_UNSET_SECRET"}],
                         webhook_options=FAST)
    monkeypatch.delenv("PODIUM_UNSET_SECRET", raising=False)
    _promote(client, auth, version_id)
    rows = _wait_for(lambda: _settled(client, auth))
    assert rows[0]["state"] == "failed" and "PODIUM_UNSET_SECRET" in rows[0]["last_error"]
    assert receiver.requests == []
