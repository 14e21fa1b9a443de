"""``registry serve`` killed with SIGKILL in the middle of promotions, then started again.

Three ways to land the kill inside a transition: at random moments while many promotions and
rollbacks are in flight (several rounds, both databases); on SQLite while the server holds the
write lock inside a promotion (a large checkpoint keeps the integrity re-check, which runs in
the transaction, busy); on PostgreSQL after the promotion's first write, while its transaction
waits on a row lock the test holds. After every restart: exactly one champion, the audit log
agrees with every version's state, the outbox agrees with the audit log, and every transition
the server acknowledged (200) is still there.
"""

from __future__ import annotations

import datetime as dt
import random
import signal
import socket
import sqlite3
import threading
import time

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from registry import store
from registry.db import read_session, write_session
from registry.models import AuditEntry
from tests.api.conftest import TRACK
from tests.conftest import POSTGRES_URL
from tests.faults.conftest import (
    assert_consistent,
    backend_alive,
    http_client,
    waiting_behind,
)
from trainer.checksums import write_sha256sums

pytestmark = pytest.mark.slow
ROUNDS = 5
CLIENTS = 6
RETRY_KEY = {"Idempotency-Key": "promote-after-a-crash"}


def _admin(server, tokens) -> httpx.Client:
    return http_client(server.url, tokens["admin"])


def _after_restart(server, tokens, engine) -> str:
    """The database's invariants, and the restarted server's view of them."""
    champion = assert_consistent(engine, TRACK)
    assert champion, "a kill must never leave the track without a champion"
    with _admin(server, tokens) as http:
        assert http.get(f"/tracks/{TRACK}/champion").json()["version_id"] == champion
        latest = http.get(f"/tracks/{TRACK}/audit", params={"limit": 1}).json()["items"][0]
        assert latest["action"] in ("promote", "rollback") and latest["version_id"] == champion
    return champion


def test_sigkill_at_random_points_of_concurrent_promotions(db_url, engine, tokens, register,
                                                           artefacts_root, serve) -> None:
    rng = random.Random(20250630)
    challengers = [register(f"v{i}-kill") for i in range(ROUNDS * CLIENTS * 5)]
    server = serve(db_url, artefacts_root)
    with _admin(server, tokens) as http:
        first = http.post(f"/versions/{challengers.pop()}/promote",
                          json={"reason": "first", "force": True, "expected_champion": ""})
        assert first.status_code == 200, first.text
    acknowledged: dict[int, tuple[str, str]] = {}  # audit id → (action, version id)
    answers: list[tuple[int, str]] = []
    cut_off: list[str | None] = []  # requests in flight when the server died
    lock = threading.Lock()

    def client(seed: int, stop: threading.Event, answered: threading.Event) -> None:
        pick = random.Random(seed)
        with _admin(server, tokens) as http:
            while not stop.is_set():
                with lock:
                    version_id = challengers.pop() if challengers and pick.random() < 0.7 \
                        else None
                try:
                    if version_id is None:
                        response = http.post(f"/tracks/{TRACK}/rollback",
                                             json={"reason": "kill test"})
                    else:
                        response = http.post(f"/versions/{version_id}/promote",
                                             json={"reason": "kill test", "force": True})
                except httpx.TransportError:
                    with lock:
                        cut_off.append(version_id)
                    return  # the server died under this request
                body = response.json()
                with lock:
                    answers.append((response.status_code, body.get("code", "ok")))
                    if response.status_code == 200:
                        moved = body["transition"]
                        acknowledged[moved["audit_id"]] = (moved["action"],
                                                           moved["version_id"])
                answered.set()

    for _ in range(ROUNDS):
        stop, answered = threading.Event(), threading.Event()
        threads = [threading.Thread(target=client, args=(rng.random(), stop, answered))
                   for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        assert answered.wait(timeout=60), server.log()[-2000:]  # past the first-call imports
        time.sleep(rng.uniform(0.0, 0.4))  # then a random moment, requests in flight
        server.kill()
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
        server.start()
        _after_restart(server, tokens, engine)
        with read_session(engine) as session:
            kept = {a.id: (a.action, a.version_id) for a in session.exec(select(AuditEntry))}
        assert {k: kept.get(k) for k in acknowledged} == acknowledged, "an answered 200 was lost"
    statuses = {status for status, _ in answers}
    assert statuses <= {200, 409}, answers  # never a 5xx, never a hang
    assert any(status == 200 for status, _ in answers)
    assert len(cut_off) >= ROUNDS, "every kill must land on requests in flight"
    assert {code for status, code in answers if status == 409} <= {
        "invalid_transition", "champion_changed"}
    with _admin(server, tokens) as http:  # and the restarted server still changes champions
        assert http.post(f"/versions/{challengers.pop()}/promote",
                         json={"reason": "after", "force": True}).status_code == 200
        assert http.post(f"/tracks/{TRACK}/rollback", json={"reason": "after"}).status_code \
            == 200
    _after_restart(server, tokens, engine)


def _write_locked(probe: sqlite3.Connection) -> bool:
    try:
        probe.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        assert "locked" in str(exc), exc
        return True
    probe.execute("ROLLBACK")
    return False


def _frozen_inside_the_promotion(server, probe: sqlite3.Connection, incumbent: str) -> bool:
    """Freeze the server (SIGSTOP) the moment it holds the write lock; keep it frozen only if
    that lock is the promotion's: the Idempotency-Key's claim is committed, the promotion is
    not. Otherwise let it run on (SIGCONT) and look again."""
    if not _write_locked(probe):
        return False
    server.process.send_signal(signal.SIGSTOP)
    claimed = probe.execute("SELECT count(*) FROM idempotency_record WHERE key = ? AND "
                            "status_code IS NULL", (RETRY_KEY["Idempotency-Key"],)).fetchone()
    champion = probe.execute("SELECT version_id FROM model_version WHERE state = 'champion'"
                             ).fetchone()
    if claimed == (1,) and champion == (incumbent,) and _write_locked(probe):
        return True
    server.process.send_signal(signal.SIGCONT)
    return False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_sigkill_while_a_promotion_holds_the_sqlite_write_lock(db_url, engine, tokens, register,
                                                               make_bundle, artefacts_root,
                                                               serve) -> None:
    incumbent = register("v1-incumbent")
    challenger, fingerprint = make_bundle("v2-large")
    bundle = artefacts_root / "models" / TRACK / challenger
    with open(bundle / "checkpoint" / "weights.bin", "ab") as handle:  # a while to hash
        for _ in range(192):
            handle.write(b"\x5a" * (1 << 20))
    write_sha256sums(bundle)
    with write_session(engine) as session:
        store.register_version(session, track=TRACK, version_id=challenger,
                               fingerprint=fingerprint, artefacts_root=artefacts_root,
                               actor="test")
    server = serve(db_url, artefacts_root)
    with _admin(server, tokens) as http:
        assert http.post(f"/versions/{incumbent}/promote",
                         json={"reason": "first", "force": True}).status_code == 200
    outcome: list[object] = []

    def promote() -> None:
        with _admin(server, tokens) as http:
            try:
                outcome.append(http.post(f"/versions/{challenger}/promote", headers=RETRY_KEY,
                                         json={"reason": "killed", "force": True}))
            except httpx.TransportError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=promote)
    thread.start()
    probe = sqlite3.connect(engine.url.database, timeout=0, isolation_level=None)
    deadline = time.monotonic() + 60
    try:
        while not _frozen_inside_the_promotion(server, probe, incumbent):
            assert thread.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.002)
    finally:
        probe.close()
    server.kill()
    thread.join(timeout=60)
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError), outcome
    server.start()
    assert _after_restart(server, tokens, engine) == incumbent
    with _admin(server, tokens) as http:
        # The key's claim names the killed server process: the restarted server sees it is
        # gone, takes the claim over at once and runs the promotion (the lock died with it).
        retry = http.post(f"/versions/{challenger}/promote", headers=RETRY_KEY,
                          json={"reason": "killed", "force": True})
        assert retry.status_code == 200, retry.text
        assert retry.headers["Idempotency-Taken-Over"].startswith(f"{socket.gethostname()}:")
    assert _after_restart(server, tokens, engine) == challenger


@pytest.mark.skipif(not POSTGRES_URL, reason="PODIUM_TEST_POSTGRES_URL not set")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_sigkill_after_the_first_write_of_a_postgres_promotion(db_url, engine, tokens, register,
                                                              artefacts_root, serve) -> None:
    incumbent, challenger = register("v1-incumbent"), register("v2-challenger")
    server = serve(db_url, artefacts_root)
    with _admin(server, tokens) as http:
        assert http.post(f"/versions/{incumbent}/promote",
                         json={"reason": "first", "force": True}).status_code == 200
    blocker = engine.connect()
    blocker.begin()
    # Hold the challenger's row: the promotion retires the incumbent (its first write), then
    # waits here to crown the challenger, inside its transaction.
    blocker.execute(text("SELECT 1 FROM model_version WHERE version_id = :v FOR UPDATE"),
                    {"v": challenger})
    holder = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
    outcome: list[object] = []

    def promote() -> None:
        with _admin(server, tokens) as http:
            try:
                outcome.append(http.post(f"/versions/{challenger}/promote",
                                         json={"reason": "killed", "force": True}))
            except httpx.TransportError as exc:
                outcome.append(exc)

    thread = threading.Thread(target=promote)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not (waiting := waiting_behind(blocker, holder)):
            assert thread.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.01)
        (waiting,) = waiting
        locked = blocker.execute(text(  # the incumbent's row: written, not committed
            "SELECT 1 FROM model_version WHERE version_id = :v FOR UPDATE SKIP LOCKED"),
            {"v": incumbent}).all()
        assert locked == []
        server.kill()
        thread.join(timeout=60)
    finally:
        blocker.rollback()
        blocker.close()
    assert len(outcome) == 1 and isinstance(outcome[0], httpx.TransportError), outcome
    with engine.connect() as connection:  # the orphaned backend aborts once it reads EOF
        deadline = time.monotonic() + 60
        while backend_alive(connection, waiting):
            assert time.monotonic() < deadline, "the killed server's transaction lingers"
            time.sleep(0.05)
    server.start()
    assert _after_restart(server, tokens, engine) == incumbent
    with _admin(server, tokens) as http:
        again = http.post(f"/versions/{challenger}/promote",
                          json={"reason": "again", "force": True})
        assert again.status_code == 200, again.text
    assert _after_restart(server, tokens, engine) == challenger


def test_a_claim_left_by_a_killed_server_is_taken_over_after_its_lease(client, auth, register,
                                                                       engine) -> None:
    """What the SIGKILL above leaves behind: a claimed key with no answer. Once the claim is
    older than any request runs, a retry with that key runs for real."""
    from registry.api.idempotency import request_fingerprint
    from registry.models import ApiToken, IdempotencyRecord

    version_id = register("v1-retried")
    path = f"/api/v1/versions/{version_id}/promote"
    body = {"reason": "killed", "force": True, "expected_champion": None}
    with write_session(engine) as session:
        token = session.exec(select(ApiToken).where(ApiToken.name == "admin-bot")).one()
        session.add(IdempotencyRecord(
            token_id=token.id, key=RETRY_KEY["Idempotency-Key"],
            request_hash=request_fingerprint("POST", path, body),
            created_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=1)))
        session.commit()
    retried = client.post(path, headers={**auth("admin"), **RETRY_KEY}, json=body)
    assert retried.status_code == 200, retried.text
    assert retried.json()["version"]["state"] == "champion"
