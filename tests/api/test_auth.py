"""Bearer tokens and scopes on every route: 401 without a valid token, 403 if too small."""

from __future__ import annotations

import os
import subprocess

import pytest
from sqlmodel import select

from registry.auth import create_token, hash_token
from registry.db import read_session, write_session
from registry.errors import AlreadyExists, InvalidInput
from registry.models import ApiToken
from tests.api.conftest import API, TRACK, assert_problem
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
