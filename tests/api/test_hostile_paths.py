"""Paths and answers an attacker shapes: control characters, huge paths, server-side paths."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from registry.api.problems import LOGGED_PATH_CHARS, loggable_path
from tests.api.conftest import API, TRACK, assert_problem

Auth = Callable[[str], dict[str, str]]


@pytest.mark.parametrize("suffix", ["%0a", "%0A", "%0d", "%00", "%1b", "%7f", "%c2%85"])
def test_an_id_with_a_control_character_names_nothing(client: TestClient, auth: Auth,
                                                      register: Callable[..., str],
                                                      suffix: str) -> None:
    version_id = register()
    assert client.get(f"{API}/versions/{version_id}", headers=auth("read")).status_code == 200
    body = assert_problem(client.get(f"{API}/versions/{version_id}{suffix}",
                                     headers=auth("read")), 404, "not_found")
    assert "control character" in body["detail"]
    for method, path in [("POST", f"{API}/versions/{version_id}{suffix}/promote"),
                         ("POST", f"{API}/versions/{version_id}{suffix}/retire"),
                         ("GET", f"{API}/tracks/{TRACK}{suffix}/champion"),
                         ("GET", f"{API}/tracks/{TRACK}{suffix}/leaderboard")]:
        answer = client.request(method, path, headers=auth("admin"),
                                json={"reason": "x", "force": True})
        assert_problem(answer, 404, "not_found")
    assert client.get(f"{API}/versions/{version_id}", headers=auth("read")).json()[
        "state"] == "challenger"


def test_the_request_log_quotes_and_caps_the_path(client: TestClient,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    forged = "/x%0a2026-01-01 INFO POST /api/v1/versions/v1-20250630-3fa2c1de/promote 200"
    huge = "/" + "a" * 60_000
    with caplog.at_level(logging.DEBUG, logger="registry.api"):
        client.get(forged)
        client.get(huge)
    lines = [r.getMessage() for r in caplog.records if r.name == "registry.api"
             and r.getMessage().startswith("GET ")]
    assert len(lines) == 2, lines
    assert all("\n" not in line and "\r" not in line for line in lines)
    assert '"/x\\n2026-01-01 INFO POST' in lines[0]
    assert len(lines[1]) < LOGGED_PATH_CHARS + 200
    assert "…(+59801 chars)" in lines[1]


def test_loggable_path_escapes_every_control_character() -> None:
    assert loggable_path("/a\r\n\x1b[31m\x00") == '"/a\\r\\n\\u001b[31m\\u0000"'
    assert loggable_path("/ok") == '"/ok"'


def test_integrity_failure_names_paths_relative_to_the_artefacts_root(
        client: TestClient, auth: Auth, register: Callable[..., str],
        artefacts_root: Path) -> None:
    version_id = register()
    weights = artefacts_root / "models" / TRACK / version_id / "checkpoint" / "weights.bin"
    weights.write_bytes(b"tampered")
    answer = client.post(f"{API}/versions/{version_id}/promote", headers=auth("admin"),
                         json={"reason": "first", "force": True})
    body = assert_problem(answer, 422, "integrity_failure")
    assert str(artefacts_root) not in answer.text
    assert str(artefacts_root.resolve()) not in answer.text
    assert f"models/{TRACK}/{version_id}" in body["detail"]


def test_only_allowed_hosts_are_served_and_named_in_next_links(
        make_client, auth: Auth, register: Callable[..., str]) -> None:
    client = make_client(allowed_hosts=["podium.example", "*.internal.example"])
    register("v1-linear")
    register("v2-linear")
    page = client.get(f"{API}/versions?limit=1",
                      headers={**auth("read"), "Host": "podium.example"})
    assert page.status_code == 200, page.text
    assert page.json()["next"].startswith("http://podium.example/api/v1/versions?")
    subdomain = {**auth("read"), "Host": "eu.internal.example:8443"}
    assert client.get(f"{API}/tracks", headers=subdomain).status_code == 200
    for host in ("testserver", "evil.example", "internal.example", "podium.example.evil"):
        body = assert_problem(client.get(f"{API}/versions?limit=1",
                                         headers={**auth("read"), "Host": host}),
                              400, "invalid_host")
        assert host in body["detail"]
