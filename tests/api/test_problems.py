"""Every error is RFC 9457 problem JSON with a stable code, a request id, and no internals."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from registry.api import create_app
from registry.config import PodiumConfig
from registry.db import make_engine
from tests.api.conftest import API, TRACK, assert_problem


def test_unknown_route_and_method(client, auth) -> None:
    assert_problem(client.get(f"{API}/nothing-here", headers=auth("read")), 404, "not_found")
    assert_problem(client.get("/favicon.ico"), 404, "not_found")
    response = client.delete(f"{API}/tracks", headers=auth("admin"))
    body = assert_problem(response, 405, "method_not_allowed")
    assert "DELETE" in body["detail"] and response.headers["allow"] == "GET"


def test_validation_errors_name_the_fields(client, auth, register) -> None:
    version_id = register("v1-linear")
    url = f"{API}/versions/{version_id}/promote"
    body = assert_problem(client.post(url, headers=auth("admin"), json={"force": "maybe"}),
                          422, "validation_error")
    fields = {tuple(e["loc"]) for e in body["errors"]}
    assert {("body", "reason"), ("body", "force")} <= fields
    body = assert_problem(client.post(url, headers=auth("admin"), json={"reason": "x",
                                                                       "sneaky": 1}),
                          422, "validation_error")
    assert body["errors"][0]["loc"] == ["body", "sneaky"]
    assert_problem(client.post(url, headers={**auth("admin"), "Content-Type": "application/json"},
                               content=b"{not json"), 422, "validation_error")
    assert_problem(client.post(url, headers=auth("admin"),
                               json={"reason": "x", "expected_champion": "../../etc"}),
                   422, "invalid_version_id")


@pytest.mark.parametrize("bad", ["..%2F..%2Fetc%2Fpasswd", "a%2Fb", "%2E%2E", "V1-BAD-x",
                                 "x" * 200])
def test_path_like_or_bad_version_ids_are_refused_before_any_lookup(client, auth, bad) -> None:
    for method, suffix in (("GET", ""), ("POST", "/promote"), ("POST", "/retire")):
        response = client.request(method, f"{API}/versions/{bad}{suffix}", headers=auth("admin"),
                                  json={"reason": "r"} if method == "POST" else None)
        assert_problem(response, 422, "invalid_version_id")


def test_bad_track_names_are_refused(client, auth) -> None:
    for path in ("..%2F..%2Fetc/champion", "UPPER/champion", "a%2Fb/audit"):
        assert_problem(client.get(f"{API}/tracks/{path}", headers=auth("read")),
                       422, "invalid_track")
    assert_problem(client.post(f"{API}/tracks/..%2Fx/rollback", headers=auth("admin"),
                               json={"reason": "r"}), 422, "invalid_track")


def test_bodies_over_the_limit_get_413(make_client, auth, register) -> None:
    client = make_client(max_body_bytes=2048)
    version_id = register("v1-linear")
    url = f"{API}/versions/{version_id}/promote"
    big = {"reason": "x" * 4000, "force": True}
    assert_problem(client.post(url, headers=auth("admin"), json=big), 413, "payload_too_large")

    def chunks():  # no Content-Length: the streamed size is counted
        for _ in range(10):
            yield b" " * 1000
    response = client.post(url, headers={**auth("admin"), "Content-Type": "application/json"},
                           content=chunks())
    assert "content-length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
    assert client.get(f"{API}/versions/{version_id}", headers=auth("read")).json()[
        "state"] == "challenger"


def test_request_ids_are_echoed_when_sane_and_replaced_otherwise(client, auth) -> None:
    response = client.get(f"{API}/health", headers={"X-Request-ID": "trace-123.abc"})
    assert response.headers["x-request-id"] == "trace-123.abc"
    response = client.get(f"{API}/health", headers={"X-Request-ID": "bad id <script>"})
    assert response.headers["x-request-id"] != "bad id <script>"
    assert len(response.headers["x-request-id"]) == 32
    body = assert_problem(client.get(f"{API}/nope", headers={"X-Request-ID": "r-1"}),
                          404, "not_found")
    assert body["request_id"] == "r-1"


def test_unexpected_errors_are_500_problems_with_a_request_id(make_client, caplog) -> None:
    client = make_client()

    def explode() -> None:
        raise RuntimeError("secret internals: SELECT * FROM api_token")

    client.app.add_api_route("/boom", explode)
    response = client.get("/boom", headers={"X-Request-ID": "boom-1"})
    body = assert_problem(response, 500, "internal_error")
    assert "SELECT" not in response.text and "secret" not in response.text
    assert body["request_id"] == "boom-1" and response.headers["x-request-id"] == "boom-1"
    assert any("boom-1" in r.getMessage() for r in caplog.records)


def test_database_down_is_503_without_internals(tmp_path) -> None:
    engine = make_engine("postgresql+psycopg://podium:secretpw@127.0.0.1:9/none",
                         connect_args={"connect_timeout": 1})
    config = PodiumConfig.model_validate({"database": {"url": "sqlite:///unused.db"},
                                          "artefacts_root": str(tmp_path),
                                          "server": {"public_reads": True}})
    try:
        with TestClient(create_app(config, engine=engine), raise_server_exceptions=False) as c:
            for path in ("/health", f"/tracks/{TRACK}/champion", "/versions"):
                response = c.get(f"{API}{path}")
                assert_problem(response, 503, "database_unavailable")
                assert "secretpw" not in response.text and "psycopg" not in response.text
    finally:
        engine.dispose()


def test_cors_is_off_unless_configured(make_client) -> None:
    plain = make_client()
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    response = plain.options(f"{API}/tracks", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    allowed = make_client(cors_origins=["https://ops.example"])
    response = allowed.options(f"{API}/tracks", headers={**preflight,
                                                         "Origin": "https://ops.example"})
    assert response.headers["access-control-allow-origin"] == "https://ops.example"
