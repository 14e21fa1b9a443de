"""Failed authentication is logged with the client's address, at a bounded rate."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from tests.api.conftest import API


def _lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "registry.auth"]


def test_failures_are_logged_with_the_address_once_per_window(
        client, auth, caplog: pytest.LogCaptureFixture, monkeypatch) -> None:
    now = [1000.0]  # registry.auth's clock, moved by hand
    monkeypatch.setattr("registry.auth.time", SimpleNamespace(monotonic=lambda: now[0]))
    bad = {"Authorization": "Bearer pod_not-a-real-token-but-secret-looking"}
    with caplog.at_level(logging.WARNING, logger="registry.auth"):
        for _ in range(50):
            assert client.get(f"{API}/tracks", headers=bad).status_code == 401
        assert client.get(f"{API}/tracks", headers=auth("read")).status_code == 200
        assert _lines(caplog) == [
            'failed authentication from testclient: invalid_token on GET "/api/v1/tracks"']
        now[0] += 61
        assert client.post(f"{API}/tracks/x/rollback", json={"reason": "r"}).status_code == 401
    lines = _lines(caplog)
    assert lines[1] == ('failed authentication from testclient: missing_token on POST '
                        '"/api/v1/tracks/x/rollback" (49 more from this address since its '
                        'last line)')
    assert "not-a-real-token" not in caplog.text


def test_many_addresses_cannot_flood_the_log(monkeypatch,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from registry.auth import FailedAuthLog

    now = [0.0]
    monkeypatch.setattr("registry.auth.time", SimpleNamespace(monotonic=lambda: now[0]))
    failures = FailedAuthLog(window=60, max_lines=10)
    with caplog.at_level(logging.WARNING, logger="registry.auth"):
        for i in range(1000):
            failures.record(f"198.51.100.{i % 250}:{i}", code="invalid_token", request="GET /")
        assert len(_lines(caplog)) == 10
        now[0] = 60.0
        failures.record("203.0.113.1", code="invalid_token", request="GET /")
    lines = _lines(caplog)
    assert lines[10] == ("failed authentication: 990 more from other addresses were not "
                         "logged in the last 60 s")
    assert lines[11].startswith("failed authentication from 203.0.113.1: invalid_token")
