"""A claimed Idempotency-Key left by a dead server instance is taken over at once, and said so."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import select

from registry.api.idempotency import TAKEN_OVER_HEADER, request_fingerprint, this_instance
from registry.db import write_session
from registry.models import ApiToken, IdempotencyRecord
from tests.api.conftest import API, assert_problem

KEY = "promote-after-a-crash"


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _claim(engine: Engine, path: str, body: dict, claimed_by: str) -> None:
    """What a server killed mid-request leaves: a fresh claim with no answer."""
    with write_session(engine) as session:
        token = session.exec(select(ApiToken).where(ApiToken.name == "admin-bot")).one()
        session.add(IdempotencyRecord(token_id=token.id, key=KEY, claimed_by=claimed_by,
                                      request_hash=request_fingerprint("POST", path, body)))
        session.commit()


@pytest.mark.parametrize("dead", ["exited process", "earlier process under this pid"])
def test_a_claim_of_a_dead_instance_on_this_host_is_taken_over_at_once(
        client: TestClient, auth: Callable[[str], dict[str, str]], register: Callable[..., str],
        engine: Engine, caplog: pytest.LogCaptureFixture, dead: str) -> None:
    version_id = register("v1-retried")
    path = f"{API}/versions/{version_id}/promote"
    body = {"reason": "crashed", "force": True, "expected_champion": None}
    pid = _dead_pid() if dead == "exited process" else os.getpid()
    instance = f"{socket.gethostname()}:{pid}:0dead0ff"
    _claim(engine, path, body, instance)
    with caplog.at_level(logging.WARNING, logger="registry.api"):
        retried = client.post(path, headers={**auth("admin"), "Idempotency-Key": KEY},
                              json=body)
    assert retried.status_code == 200, retried.text
    assert retried.headers[TAKEN_OVER_HEADER] == instance
    assert retried.json()["version"]["state"] == "champion"
    assert any(f"claimed by server instance {instance}, which died" in r.getMessage()
               for r in caplog.records)
    again = client.post(path, headers={**auth("admin"), "Idempotency-Key": KEY}, json=body)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == retried.json()
    with write_session(engine) as session:
        assert session.exec(select(IdempotencyRecord)).one().claimed_by == this_instance()


@pytest.mark.parametrize("alive", ["another host", "a live process on this host"])
def test_a_claim_of_an_instance_that_may_live_is_still_running(
        client: TestClient, auth: Callable[[str], dict[str, str]], register: Callable[..., str],
        engine: Engine, alive: str) -> None:
    version_id = register("v1-retried")
    path = f"{API}/versions/{version_id}/promote"
    body = {"reason": "slow", "force": True, "expected_champion": None}
    instance = ("replica-2.internal:4242:0a0b0c0d" if alive == "another host"
                else f"{socket.gethostname()}:{os.getppid()}:0a0b0c0d")
    _claim(engine, path, body, instance)
    answer = client.post(path, headers={**auth("admin"), "Idempotency-Key": KEY}, json=body)
    problem = assert_problem(answer, 409, "idempotency_in_progress")
    assert f"still running on server instance {instance}; retry shortly" in problem["detail"]
    assert TAKEN_OVER_HEADER not in answer.headers
