"""The security review (docs/RELIABILITY.md), one test per point where a test can hold it.

1. Tokens are never stored or logged in clear (every byte of the database, every log record).
2. Every mutating route needs a scope of at least ``promote`` (the app's routes are enumerated,
   so a new route without one fails here), every API read a valid token.
3. A forced promotion needs ``admin``, however ``force`` is spelt and whatever key is replayed.
4. No secret, token, database URL, SQL or traceback in any error body, 500 and 503 included.
5. CORS is off by default, and when on it names origins and never allows credentials.
6. The body limit (413) holds by Content-Length and by bytes streamed (a chunked body has no
   Content-Length); long paths and queries get short 4xx answers.
7. Token digests are compared in constant time, and the token cache is keyed by digest.
8. The page at ``/`` (when present): no token in any page or redirect, no reflected markup,
   cookie HttpOnly + SameSite=Strict, and the cookie never authorises an API write.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import SQLModel, select
from starlette.routing import Mount, Route

from registry import auth, store
from registry.api import create_app
from registry.auth import RANK, TokenCache
from registry.config import PodiumConfig
from registry.db import make_engine, read_session
from registry.models import ModelVersion
from tests.fuzz.conftest import API, TRACK, Deployment, deploy

# one worker runs this module: its module fixture is built once
pytestmark = pytest.mark.xdist_group("security-server")

SECRET = "hunter2-s3cret"
# Page routes that set or clear the sign-in cookie: no state on the server changes.
COOKIE_ROUTES = {("POST", "/sign-in"), ("POST", "/sign-out")}


@pytest.fixture
def api(podium: Deployment) -> TestClient:
    with TestClient(podium.app, raise_server_exceptions=False) as client:
        yield client


def _states(podium: Deployment) -> dict[str, str]:
    with read_session(podium.engine) as session:
        return {v.version_id: v.state for v in session.exec(select(ModelVersion))}


def _routes(app: Any) -> list[RouteContext]:
    """Every route as served (FastAPI includes routers lazily: ``app.routes`` nests them)."""
    return list(iter_route_contexts(app.routes))


def _fill(route: RouteContext, podium: Deployment) -> str:
    return route.path_format.format(version_id=podium.versions["challenger"], track=TRACK,
                                    event_id=1, day="2030-01-02", file_path="metadata.json")


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    return response.json()


def _has_page(app: Any) -> bool:
    return any(r.path == "/" and "GET" in (r.methods or ()) for r in _routes(app))


# --------------------------------------------------------------------------- 1. tokens at rest


def test_tokens_are_never_stored_or_logged_in_clear(api: TestClient, podium: Deployment,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # SQLAlchemy's engine log included: statements and params
    challenger = podium.versions["challenger"]
    for scope in ("read", "promote", "admin"):
        api.get(f"{API}/versions", headers=podium.auth(scope))
        api.get(f"{API}/tracks/{TRACK}/champion", headers=podium.auth(scope))
    replayed = {**podium.auth("admin"), "Idempotency-Key": "first-try"}
    for _ in range(2):  # the stored answer and its replay
        api.post(f"{API}/versions/{challenger}/promote", headers=replayed,
                 json={"reason": "forced for the test", "force": True})
    api.get(f"{API}/tracks", headers={"Authorization": "Bearer pod_not-a-real-token"})
    if _has_page(podium.app):
        api.post("/sign-in", data={"token": podium.tokens["read"]})
        api.get("/", headers=podium.auth("read"))
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    with podium.engine.connect() as connection:  # every row of every table, and the files
        stored = repr([connection.execute(table.select()).all()
                       for table in SQLModel.metadata.sorted_tables]).encode()
    if podium.engine.dialect.name == "sqlite":
        database = Path(podium.engine.url.database or "")
        stored += b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
    assert stored and logged
    for token in [*podium.tokens.values(), "pod_not-a-real-token"]:
        secret = token.removeprefix("pod_")
        assert secret not in logged, "a token reached the log"
        assert secret.encode() not in stored, "a token reached the database"
    assert auth.hash_token(podium.tokens["admin"]).encode() in stored  # the digest is what's kept


# --------------------------------------------------------------------------- 2. scopes


def _required_scopes(route: RouteContext) -> set[str]:
    """The scopes ``registry.api.deps.require(scope)`` checks anywhere in the route's tree."""
    scopes, stack = set(), [route.dependant]
    while stack:
        dependant = stack.pop()
        call = dependant.call
        if call is not None and getattr(call, "__qualname__", "") == "require.<locals>.dependency":
            scopes.add(inspect.getclosurevars(call).nonlocals["scope"])
        stack.extend(dependant.dependencies)
    return scopes


def test_every_route_states_its_scope(podium: Deployment) -> None:
    checked = 0
    for route in _routes(podium.app):
        methods = set(route.methods or ())
        writes = methods - {"GET", "HEAD", "OPTIONS"}
        if not isinstance(route.original_route, APIRoute):
            # A Route, or a Mount of static assets (the offline API docs' scripts): reads only.
            assert isinstance(route.original_route, Route | Mount) and not writes, (
                f"{sorted(methods)} {route.path}: not checkable; make it an APIRoute with a "
                "scope dependency, or list it in COOKIE_ROUTES with the reason")
            continue
        strongest = max((RANK[s] for s in _required_scopes(route)), default=0)
        for method in writes:
            if (method, route.path) in COOKIE_ROUTES:
                continue
            assert strongest >= RANK["promote"], f"{method} {route.path} has no promote scope"
            checked += 1
    assert checked >= 3  # promote, retire, rollback at least


def test_every_api_read_refuses_a_missing_or_unknown_token(api: TestClient,
                                                          podium: Deployment) -> None:
    # Behavioural, not structural: the champion's hot path checks its token inline.
    reads = [r for r in _routes(podium.app) if r.path.startswith(API)
             and "GET" in (r.methods or ()) and r.path != f"{API}/health"]
    assert len(reads) >= 7
    for route in reads:
        for headers, code in (({}, "missing_token"),
                              ({"Authorization": "Bearer pod_unknown"}, "invalid_token")):
            response = api.get(_fill(route, podium), headers=headers)
            assert _problem(response, 401)["code"] == code, route.path


def test_every_mutating_route_refuses_no_token_and_a_read_token(api: TestClient,
                                                                podium: Deployment) -> None:
    states = _states(podium)
    for route in _routes(podium.app):
        if not route.path.startswith(API):
            continue
        for method in set(route.methods) - {"GET", "HEAD", "OPTIONS"}:
            url = _fill(route, podium)
            for headers, status in (({}, 401), (podium.auth("read"), 403)):
                response = api.request(method, url, headers=headers, json={"reason": "r"})
                _problem(response, status)
    assert _states(podium) == states


@pytest.mark.parametrize("force", [True, "true", "True", 1, "1", "yes", "on"])
def test_forcing_needs_admin_however_force_is_spelt(api: TestClient, podium: Deployment,
                                                   force: Any) -> None:
    url = f"{API}/versions/{podium.versions['challenger']}/promote"
    states = _states(podium)
    body = _problem(api.post(url, headers=podium.auth("promote"),
                             json={"reason": "r", "force": force}), 403)
    assert body["code"] == "insufficient_scope" and _states(podium) == states
    response = api.post(url, headers=podium.auth("admin"), json={"reason": "r", "force": force})
    assert response.status_code == 200 and response.json()["transition"]["forced"] is True


def test_an_idempotency_key_never_replays_across_tokens(api: TestClient,
                                                        podium: Deployment) -> None:
    url = f"{API}/versions/{podium.versions['challenger']}/promote"
    body = {"reason": "r", "force": True}
    first = api.post(url, headers={**podium.auth("admin"), "Idempotency-Key": "k-1"}, json=body)
    assert first.status_code == 200
    for scope, status in (("promote", 403), ("read", 403)):
        again = api.post(url, headers={**podium.auth(scope), "Idempotency-Key": "k-1"},
                         json=body)
        assert "idempotent-replayed" not in again.headers
        _problem(again, status)


# --------------------------------------------------------------------------- 4. error bodies


def _assert_nothing_leaks(response: Any, *secrets: str) -> None:
    text = response.text
    for word in (*secrets, SECRET, "Traceback", 'File "', "sqlalchemy", "psycopg", "SELECT ",
                 "api_token", "token_hash", "/work/", ".py"):
        assert word not in text, f"{word!r} leaked: {text[:300]}"


def test_a_500_says_nothing_but_its_request_id(api: TestClient, podium: Deployment,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(podium.engine.url)

    def explode(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"{SECRET} {url} {podium.tokens['admin']} SELECT * FROM api_token")

    monkeypatch.setattr(store, "list_versions", explode)
    monkeypatch.setattr("registry.promotion.gate_outcome", explode)
    for method, path, body in (("GET", f"{API}/versions", None),
                               ("GET", f"{API}/tracks", None),
                               ("POST", f"{API}/versions/{podium.versions['challenger']}/promote",
                                {"reason": "r"})):
        headers = {**podium.auth("admin"), "X-Request-ID": "req-500",
                   "Idempotency-Key": "boom-1"}
        response = api.request(method, path, headers=headers, json=body)
        problem = _problem(response, 500)
        assert problem["code"] == "internal_error" and problem["request_id"] == "req-500"
        _assert_nothing_leaks(response, url, podium.tokens["admin"], str(podium.root))


def test_a_503_names_no_host_password_or_path(tmp_path: Path) -> None:
    hidden = tmp_path / "hidden-dir-name"
    engines = {
        "database_unavailable": make_engine(
            f"postgresql+psycopg://podium:{SECRET}@127.0.0.1:9/podium",
            connect_args={"connect_timeout": 1}),
        "database_not_migrated": make_engine(f"sqlite:///{hidden / 'empty.db'}"),
    }
    config = PodiumConfig.model_validate({"database": {"url": "sqlite://"},
                                          "artefacts_root": str(tmp_path)})
    for code, engine in engines.items():
        try:
            with TestClient(create_app(config, engine=engine),
                            raise_server_exceptions=False) as client:
                for method, path in (("GET", "/health"), ("GET", "/tracks"),
                                     ("POST", f"/tracks/{TRACK}/rollback")):
                    response = client.request(method, API + path, json={"reason": "r"},
                                              headers={"Authorization": "Bearer pod_x"})
                    assert _problem(response, 503)["code"] == code
                    _assert_nothing_leaks(response, "127.0.0.1", "podium:", "hidden-dir-name",
                                          "empty.db")
        finally:
            engine.dispose()


def test_validation_errors_do_not_echo_bodies(api: TestClient, podium: Deployment) -> None:
    token = podium.tokens["admin"]
    response = api.post(f"{API}/versions/{podium.versions['challenger']}/promote",
                        headers=podium.auth("admin"),
                        json={"reason": 7, "force": "maybe", "token": token, "password": SECRET})
    body = _problem(response, 422)
    assert {tuple(e["loc"]) for e in body["errors"]} >= {("body", "token"), ("body", "password")}
    _assert_nothing_leaks(response, token.removeprefix("pod_"))


# --------------------------------------------------------------------------- 5. CORS


def test_cors_is_off_by_default_and_never_allows_credentials(api: TestClient, tmp_path: Path
                                                             ) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization"}
    for response in (api.options(f"{API}/tracks", headers=preflight),
                     api.get(f"{API}/health", headers={"Origin": "https://evil.example"})):
        assert not any(h.startswith("access-control-") for h in response.headers)
    opened = deploy(tmp_path / "cors", cors_origins=["https://ops.example"])
    try:
        with TestClient(opened.app, raise_server_exceptions=False) as client:
            ok = client.options(f"{API}/tracks", headers={**preflight,
                                                          "Origin": "https://ops.example"})
            assert ok.headers["access-control-allow-origin"] == "https://ops.example"
            assert "access-control-allow-credentials" not in ok.headers
            evil = client.options(f"{API}/tracks", headers=preflight)
            assert "access-control-allow-origin" not in evil.headers
            simple = client.get(f"{API}/health", headers={"Origin": "https://evil.example"})
            assert "access-control-allow-origin" not in simple.headers
    finally:
        opened.engine.dispose()


# --------------------------------------------------------------------------- 6. limits

LIMIT = 2048


def _send_raw(app: Any, *, path: str, headers: list[tuple[bytes, bytes]],
              chunks: list[bytes]) -> tuple[int, bytes]:
    """One POST straight into the ASGI app, its body in ``chunks`` (what a chunked upload is)."""
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)] or [{"type": "http.request", "body": b""}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "headers": headers,
             "client": ("127.0.0.1", 50000), "server": ("testserver", 80), "state": {}}
    anyio.run(app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return start["status"], b"".join(m.get("body", b"") for m in sent
                                     if m["type"] == "http.response.body")


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    deployment = deploy(tmp_path_factory.mktemp("limited") / "podium", max_body_bytes=LIMIT)
    yield deployment
    deployment.engine.dispose()


@settings(max_examples=30, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.integers(0, 1500), max_size=8),
       declared=st.sampled_from(["chunked", "true", "huge", "junk"]))
def test_the_body_limit_holds_by_length_and_by_stream(limited: Deployment, sizes: list[int],
                                                      declared: str) -> None:
    # What an HTTP/1.1 server (uvicorn) can hand over: a Content-Length it has enforced, or a
    # chunked body of unknown length, counted as it streams.
    total = sum(sizes)
    headers = [(b"content-type", b"application/json"),
               (b"authorization", f"Bearer {limited.tokens['admin']}".encode())]
    if declared == "chunked":
        headers.append((b"transfer-encoding", b"chunked"))
    else:
        length = {"true": str(total), "huge": "9" * 30, "junk": "ten"}[declared]
        headers.append((b"content-length", length.encode()))
    states = _states(limited)
    status, body = _send_raw(limited.app,
                             path=f"{API}/versions/{limited.versions['challenger']}/promote",
                             headers=headers, chunks=[b" " * size for size in sizes])
    refused_by_header = declared in {"huge", "junk"}
    if refused_by_header or total > LIMIT:
        assert status == 413 and b"payload_too_large" in body
    else:
        assert status == 422  # whitespace is not JSON: the body was read and judged
    assert _states(limited) == states


def test_long_paths_and_queries_get_short_answers(api: TestClient, podium: Deployment) -> None:
    long = "v" * 12_000  # near what registry serve lets through in a head (16 KiB)
    for url, status in ((f"{API}/versions/{long}", 422), (f"{API}/tracks/{long}/champion", 422),
                        (f"{API}/{long}", 404), (f"{API}/versions?track={long}", 422),
                        (f"{API}/versions?offset={'9' * 10_000}", 422)):
        response = api.get(url, headers=podium.auth("read"))
        body = _problem(response, status)
        assert len(response.content) < 2_000 and long not in body["detail"]


# --------------------------------------------------------------------------- 7. comparisons


def test_token_digests_are_compared_in_constant_time(podium: Deployment,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = auth.hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    token = podium.tokens["promote"]
    with read_session(podium.engine) as session:
        assert auth.authenticate(session, token).scope == "promote"
    assert calls == [(auth.hash_token(token), auth.hash_token(token))]
    cache = TokenCache(ttl=60)
    cache.put(token, auth.Principal(name="x", scope="read"))
    assert token not in cache._entries and auth.hash_token(token) in cache._entries


# --------------------------------------------------------------------------- 8. the page


@pytest.fixture
def page(api: TestClient, podium: Deployment) -> TestClient:
    if not _has_page(podium.app):
        pytest.skip("no page at / in this build")
    return api


def test_the_page_never_shows_or_reflects(page: TestClient, podium: Deployment) -> None:
    token = podium.tokens["read"]
    assert page.get("/").status_code == 401
    seen = page.get("/", headers=podium.auth("read"))
    assert seen.status_code == 200 and token not in seen.text
    for track in ("<script>alert(1)</script>", "\"><img src=x onerror=alert(1)>", "../../etc",
                  "a" * 10_000):
        response = page.get("/", params={"track": track}, headers=podium.auth("read"))
        assert response.status_code < 500
        assert "<script>alert(1)" not in response.text and "<img src=x" not in response.text
        assert token not in response.text


def test_the_page_cookie_is_guarded_and_never_writes(page: TestClient, podium: Deployment
                                                     ) -> None:
    admin = podium.tokens["admin"]
    cross = page.post("/sign-in", data={"token": admin},
                      headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert cross.status_code == 403 and "set-cookie" not in cross.headers
    signed = page.post("/sign-in", data={"token": admin}, follow_redirects=False)
    assert signed.status_code == 303 and admin not in signed.headers["location"]
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie
    assert admin not in signed.text
    states = _states(podium)
    page.cookies.set("podium_token", admin)
    write = page.post(f"{API}/versions/{podium.versions['challenger']}/promote",
                      json={"reason": "via cookie", "force": True})
    assert _problem(write, 401)["code"] == "missing_token" and _states(podium) == states
