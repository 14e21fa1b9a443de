"""Every read route: shapes, pagination, the champion's ETag, OpenAPI."""

from __future__ import annotations

from registry import migrations
from tests.api.conftest import API, TRACK, assert_problem


def _force(client, auth, version_id: str, reason: str = "seed") -> dict:
    response = client.post(f"{API}/versions/{version_id}/promote", headers=auth("admin"),
                           json={"reason": reason, "force": True})
    assert response.status_code == 200, response.text
    return response.json()


def test_health_reports_the_database_and_schema(client) -> None:
    response = client.get(f"{API}/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok",
                               "schema_revision": migrations.head_revision()}
    assert response.headers["x-request-id"]


def test_tracks_list_with_their_champions(client, auth, register) -> None:
    first = register("v1-linear")
    register("v1-other", track="rates-daily")
    _force(client, auth, first)
    response = client.get(f"{API}/tracks", headers=auth("read"))
    assert response.json() == {"items": [{"name": TRACK, "champion": first},
                                         {"name": "rates-daily", "champion": None}]}


def test_champion_is_lean_with_etag_and_no_store(client, auth, register) -> None:
    version_id = register("v1-linear")
    assert_problem(client.get(f"{API}/tracks/{TRACK}/champion", headers=auth("read")),
                   404, "no_champion")
    assert_problem(client.get(f"{API}/tracks/unknown-track/champion", headers=auth("read")),
                   404, "unknown_track")
    _force(client, auth, version_id)
    response = client.get(f"{API}/tracks/{TRACK}/champion", headers=auth("read"))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"version_id", "track", "bundle_path", "bundle_digest", "champion_since"}
    assert body["version_id"] == version_id and body["track"] == TRACK
    assert body["bundle_path"] == f"models/{TRACK}/{version_id}"
    assert response.headers["cache-control"] == "no-store"
    etag = response.headers["etag"]
    again = client.get(f"{API}/tracks/{TRACK}/champion",
                       headers={**auth("read"), "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    other = register("v2-linear")
    _force(client, auth, other)
    changed = client.get(f"{API}/tracks/{TRACK}/champion",
                         headers={**auth("read"), "If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["version_id"] == other
    assert changed.headers["etag"] != etag


def test_versions_paginate_with_a_next_link(client, auth, register) -> None:
    made = {register(f"v{i}-linear") for i in range(5)}
    seen: list[str] = []
    url = f"{API}/versions?track={TRACK}&limit=2"
    pages = 0
    while url:
        response = client.get(url, headers=auth("read"))
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 2 and page["limit"] == 2
        seen += [item["version_id"] for item in page["items"]]
        url, pages = page["next"], pages + 1
    assert pages == 3 and set(seen) == made and len(seen) == 5
    filtered = client.get(f"{API}/versions?state=champion", headers=auth("read")).json()
    assert filtered["items"] == [] and filtered["next"] is None
    assert_problem(client.get(f"{API}/versions?state=king", headers=auth("read")),
                   422, "invalid_state")
    assert_problem(client.get(f"{API}/versions?track=../etc", headers=auth("read")),
                   422, "invalid_track")
    assert_problem(client.get(f"{API}/versions?limit=0", headers=auth("read")),
                   422, "validation_error")


def test_one_version(client, auth, register) -> None:
    version_id = register("v1-linear")
    response = client.get(f"{API}/versions/{version_id}", headers=auth("read"))
    assert response.status_code == 200
    body = response.json()
    assert body["version_id"] == version_id and body["state"] == "challenger"
    assert body["created_at"].endswith(("Z", "+00:00"))
    missing = version_id[:-8] + "00000000"
    assert_problem(client.get(f"{API}/versions/{missing}", headers=auth("read")),
                   404, "unknown_version")


def test_audit_log_of_a_track(client, auth, register) -> None:
    first, second = register("v1-linear"), register("v2-linear")
    _force(client, auth, first, "first champion")
    _force(client, auth, second, "second")
    response = client.get(f"{API}/tracks/{TRACK}/audit?limit=3", headers=auth("read"))
    assert response.status_code == 200
    page = response.json()
    assert [e["action"] for e in page["items"]] == ["promote", "promote", "register"]
    assert page["items"][0]["actor"] == "admin-bot" and page["items"][0]["forced"] is True
    assert page["items"][0]["displaced_version_id"] == first
    assert page["next"] is not None
    assert_problem(client.get(f"{API}/tracks/nope/audit", headers=auth("read")),
                   404, "unknown_track")


def test_leaderboard_ranks_with_metrics_verdicts_and_curves(client, auth, engine,
                                                            artefacts_root, make_bundle) -> None:
    from tests.api.test_page import seed_board

    ids = seed_board(engine, artefacts_root, make_bundle)  # 200 days each
    response = client.get(f"{API}/tracks/{TRACK}/leaderboard", headers=auth("read"))
    assert response.status_code == 200, response.text
    board = response.json()
    rows = {row["version_id"]: row for row in board["rows"]}
    assert [row["state"] for row in board["rows"]] == [
        "champion", "challenger", "challenger", "retired"]
    assert board["rows"][0]["version_id"] == ids["champion"]
    assert board["winner"] == ids["better"] and rows[ids["better"]]["verdict"] == "PASS"
    assert rows[ids["worse"]]["verdict"] == "FAIL" and rows[ids["worse"]]["reason"]
    assert rows[ids["champion"]]["metrics"]["days"] == 200
    assert rows[ids["better"]]["metrics"]["mean_net"] > rows[ids["worse"]]["metrics"]["mean_net"]
    curve = board["curves"][ids["better"]]
    assert len(curve["days"]) == len(curve["cumulative_net"]) == 200
    assert client.get(f"{API}/tracks/{TRACK}/leaderboard").status_code == 401
    assert_problem(client.get(f"{API}/tracks/nope/leaderboard", headers=auth("read")),
                   404, "unknown_track")


def test_openapi_and_docs(client) -> None:
    schema = client.get("/openapi.json").json()
    paths = set(schema["paths"])
    assert {"/api/v1/health", "/api/v1/tracks", "/api/v1/tracks/{track}/champion",
            "/api/v1/tracks/{track}/audit", "/api/v1/tracks/{track}/rollback",
            "/api/v1/versions", "/api/v1/versions/{version_id}",
            "/api/v1/versions/{version_id}/promote", "/api/v1/versions/{version_id}/retire",
            "/api/v1/events", "/api/v1/events/{event_id}/deliveries"} <= paths
    assert "bearer" in schema["components"]["securitySchemes"]
    assert "PromoteRequest" in schema["components"]["schemas"]
    assert client.get("/docs").status_code == 200
