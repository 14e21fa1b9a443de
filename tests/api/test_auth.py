"""Bearer tokens and scopes on every route: 401 without a valid token, 403 if too small."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from registry.api import create_app
from registry.auth import (
    authenticate,
    create_token,
    hash_token,
    list_tokens,
    revoke_token,
)
from registry.db import read_session, write_session
from registry.errors import AlreadyExists, InvalidInput, InvalidTransition, NotFound, Unauthorized
from registry.models import ApiToken
from tests.api.conftest import API, TRACK, assert_problem, make_config
from tests.e2e.conftest import BIN

READS = [f"{API}/tracks", f"{API}/tracks/{TRACK}/champion", f"{API}/tracks/{TRACK}/audit",
         f"{API}/versions", f"{API}/events"]


def _mutations(version_id: str) -> list[tuple[str, dict]]:
    return [(f"{API}/versions/{version_id}/promote", {"reason": "r", "force": True}),
            (f"{API}/versions/{version_id}/promote", {"reason": "r"}),
            (f"{API}/versions/{version_id}/retire", {"reason": "r"}),
            (f"{API}/tracks/{TRACK}/rollback", {"reason": "r"})]


def test_tokens_are_stored_hashed_only(engine, tokens) -> None:
    with read_session(engine) as session:
        rows = list(session.exec(select(ApiToken)))
    assert {r.name: r.scope for r in rows} == {"read-bot": "read", "promote-bot": "promote",
                                               "admin-bot": "admin"}
    for row in rows:
        clear = tokens[row.scope]
        assert row.token_hash == hash_token(clear) and clear not in row.token_hash
    with write_session(engine) as session, pytest.raises(AlreadyExists, match="already exists"):
        create_token(session, name="read-bot", scope="read")
    with write_session(engine) as session, pytest.raises(InvalidInput, match="unknown scope"):
        create_token(session, name="x", scope="root")


@pytest.mark.parametrize("header", [None, "Bearer pod_wrong", "Bearer ", "Basic YWRtaW46eA==",
                                    "Bearer " + "x" * 5000])
def test_no_or_bad_token_is_401_everywhere(client, register, header) -> None:
    version_id = register("v1-linear")
    headers = {"Authorization": header} if header else {}
    for url in [*READS, f"{API}/versions/{version_id}"]:
        response = client.get(url, headers=headers)
        assert_problem(response, 401, response.json()["code"])
        assert response.headers["www-authenticate"].startswith("Bearer")
    for url, body in _mutations(version_id):
        response = client.post(url, headers=headers, json=body)
        assert response.status_code == 401 and response.headers["www-authenticate"]
    assert client.get(f"{API}/health").status_code == 200  # liveness needs no token


def test_scope_matrix_on_mutating_routes(client, auth, register) -> None:
    version_id = register("v1-linear")
    for url, body in _mutations(version_id):
        assert_problem(client.post(url, headers=auth("read"), json=body), 403,
                       "insufficient_scope")
    force = _mutations(version_id)[0]
    assert_problem(client.post(force[0], headers=auth("promote"), json=force[1]), 403,
                   "insufficient_scope")
    assert client.post(force[0], headers=auth("admin"), json=force[1]).status_code == 200
    other = register("v2-linear")
    retire = client.post(f"{API}/versions/{other}/retire", headers=auth("promote"),
                         json={"reason": "not needed"})
    assert retire.status_code == 200 and retire.json()["transition"]["actor"] == "promote-bot"


def test_reads_need_a_token_unless_public_reads(make_client, auth) -> None:
    private, public = make_client(), make_client(public_reads=True)
    assert_problem(private.get(f"{API}/tracks"), 401, "missing_token")
    assert private.get(f"{API}/tracks", headers=auth("read")).status_code == 200
    assert public.get(f"{API}/tracks").status_code == 200
    assert public.get(f"{API}/versions").status_code == 200
    response = public.post(f"{API}/tracks/{TRACK}/rollback", json={"reason": "r"})
    assert_problem(response, 401, "missing_token")


def test_tokens_never_reach_logs_or_bodies(client, tokens, auth, register, caplog) -> None:
    caplog.set_level("DEBUG")
    version_id = register("v1-linear")
    responses = [client.get(f"{API}/versions", headers=auth("read")),
                 client.post(f"{API}/versions/{version_id}/promote", headers=auth("promote"),
                             json={"reason": "r", "force": True}),
                 client.get(f"{API}/tracks", headers={"Authorization": "Bearer pod_guess"})]
    text = "\n".join(r.getMessage() for r in caplog.records) + "".join(r.text for r in responses)
    for token in tokens.values():
        assert token not in text
    assert "pod_guess" not in text


def test_token_create_prints_the_token_once_and_stores_its_hash(engine, db_url,
                                                                 tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    (tmp_path / "podium.yaml").write_text("{}\n")
    env.update(PODIUM_DATABASE_URL=db_url, PODIUM_CONFIG=str(tmp_path / "podium.yaml"))
    made = subprocess.run([str(BIN / "registry"), "token", "create", "--name", "ci-deployer",
                           "--scope", "promote"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("pod_") and len(token) > 40 and token not in made.stderr
    assert "shown only this once" in made.stderr
    with read_session(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.name == "ci-deployer")).one()
    assert row.scope == "promote" and row.token_hash == hash_token(token)
    again = subprocess.run([str(BIN / "registry"), "token", "create", "--name", "ci-deployer",
                            "--scope", "admin"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 1 and "already exists" in again.stderr and not again.stdout


def test_list_tokens_by_name_and_revoke_refuses_the_token(engine, tokens) -> None:
    with read_session(engine) as session:
        assert [(t.name, t.scope, t.revoked_at) for t in list_tokens(session)] == [
            ("admin-bot", "admin", None), ("promote-bot", "promote", None),
            ("read-bot", "read", None)]
        assert authenticate(session, tokens["promote"]).name == "promote-bot"
    with write_session(engine) as session:
        row = revoke_token(session, "promote-bot")
    assert row.name == "promote-bot" and row.revoked_at is not None
    with read_session(engine) as session:
        with pytest.raises(Unauthorized) as refused:
            authenticate(session, tokens["promote"])
        assert refused.value.code == "invalid_token"
        assert authenticate(session, tokens["read"]).name == "read-bot"  # the others still work
        stamped = session.exec(select(ApiToken).where(ApiToken.name == "promote-bot")).one()
    assert stamped.revoked_at is not None

    with write_session(engine) as session, pytest.raises(InvalidTransition) as twice:
        revoke_token(session, "promote-bot")
    assert twice.value.code == "token_revoked" and "already revoked" in twice.value.detail
    with write_session(engine) as session, pytest.raises(NotFound) as unknown:
        revoke_token(session, "nobody")
    assert unknown.value.code == "token_not_found" and "'nobody'" in unknown.value.detail
    with read_session(engine) as session:  # neither refusal changed anything
        after = {t.name: t.revoked_at for t in list_tokens(session)}
    assert after == {"admin-bot": None, "promote-bot": stamped.revoked_at, "read-bot": None}


def _registry(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "registry"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def test_token_list_and_revoke_commands(engine, db_url, tokens, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    (tmp_path / "podium.yaml").write_text("{}\n")
    env.update(PODIUM_DATABASE_URL=db_url, PODIUM_CONFIG=str(tmp_path / "podium.yaml"),
               COLUMNS="200")
    with read_session(engine) as session:
        hashes = [t.token_hash for t in list_tokens(session)]

    listed = _registry("token", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert "3 token(s)" in lines[0]
    rows = [line for line in lines if "-bot" in line]
    assert [r.split()[1] for r in rows] == ["admin-bot", "promote-bot", "read-bot"]
    assert all(r.rstrip(" │").endswith("-") for r in rows)  # none revoked yet
    for secret in [*hashes, *tokens.values(), "pod_"]:
        assert secret not in listed.stdout + listed.stderr

    revoked = _registry("token", "revoke", "read-bot", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert "'read-bot'" in revoked.stderr and "revoked" in revoked.stderr
    assert "within 5 seconds" in revoked.stderr and not revoked.stdout
    with read_session(engine) as session, pytest.raises(Unauthorized):
        authenticate(session, tokens["read"])
    relisted = _registry("token", "list", env=env).stdout
    read_row = next(line for line in relisted.splitlines() if "read-bot" in line)
    assert not read_row.rstrip(" │").endswith("-")  # a revocation date, not "-"

    for args, message in [(("read-bot",), "already revoked"),
                          (("nobody",), "no token named 'nobody'")]:
        failed = _registry("token", "revoke", *args, env=env)
        assert failed.returncode == 1, failed.stderr
        assert failed.stderr.startswith("error: ") and message in failed.stderr
        assert "Traceback" not in failed.stderr and not failed.stdout
    if engine.dialect.name != "sqlite":
        return  # usage and --help touch no database: checked once
    missing = _registry("token", "revoke", env=env)
    assert missing.returncode == 2 and "Missing argument" in missing.stderr
    for command in ("list", "revoke"):
        helped = _registry("token", command, "--help", env=env)
        assert helped.returncode == 0 and "--config" in helped.stdout


def test_a_revoked_token_gets_401_once_the_cache_entry_expires(engine, db_url, artefacts_root,
                                                               auth, monkeypatch) -> None:
    now = [1000.0]  # registry.auth's clock, moved by hand: no sleeping, no timing asserts
    monkeypatch.setattr("registry.auth.time", SimpleNamespace(monotonic=lambda: now[0]))
    app = create_app(make_config(db_url, artefacts_root), engine=engine, token_cache_ttl=5.0)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get(f"{API}/tracks", headers=auth("read")).status_code == 200  # cached
        with write_session(engine) as session:
            revoke_token(session, "read-bot")
        now[0] += 4.0  # inside the TTL: the cached principal still answers
        assert client.get(f"{API}/tracks", headers=auth("read")).status_code == 200
        now[0] += 1.5  # past the TTL: the database is asked again and refuses the token
        response = client.get(f"{API}/tracks", headers=auth("read"))
        assert_problem(response, 401, "invalid_token")
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert client.get(f"{API}/tracks", headers=auth("admin")).status_code == 200


def test_a_revoked_token_is_refused_at_once_without_a_cache(client, auth, engine) -> None:
    assert client.get(f"{API}/tracks", headers=auth("promote")).status_code == 200
    with write_session(engine) as session:
        revoke_token(session, "promote-bot")
    assert_problem(client.get(f"{API}/tracks", headers=auth("promote")), 401, "invalid_token")


def test_requests_that_miss_the_token_cache_together_share_one_lookup(
        engine, db_url, artefacts_root, tokens, register, monkeypatch) -> None:
    # When a cache entry expires, every connection using that token misses at once: one
    # lookup in the thread pool answers them all (here the cache keeps nothing: ttl 0).
    from registry.api import bearer

    register("v1-linear", champion=True)
    lookups: list[str] = []
    real = bearer.identify_caller
    monkeypatch.setattr(bearer, "identify_caller",
                        lambda request, token: lookups.append(token) or real(request, token))
    app = create_app(make_config(db_url, artefacts_root), engine=engine, token_cache_ttl=0.0)

    async def together(token: str) -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            answers = await asyncio.gather(*(http.get(
                f"{API}/tracks/{TRACK}/champion", headers={"Authorization": f"Bearer {token}"})
                for _ in range(8)))
        return [answer.status_code for answer in answers]

    assert asyncio.run(together(tokens["read"])) == [200] * 8
    assert lookups == [tokens["read"]]
    assert asyncio.run(together("pod_not-a-token")) == [401] * 8
    assert asyncio.run(together(tokens["read"])) == [200] * 8  # expired at once: asked again
    assert lookups == [tokens["read"], "pod_not-a-token", tokens["read"]]
    assert app.state.token_lookups == {}
