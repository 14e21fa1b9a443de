"""PostgreSQL stopped under a serving ``registry serve``, then started again.

A private cluster (never the shared one) is stopped with ``pg_ctl stop -m immediate``, which is a
crash as far as PostgreSQL knows. While it is down every request answers a 503 problem JSON (no
hang, no 500, even with more requests at once than the pool holds), ``/health`` says the
database is unavailable, and a promotion caught inside its transaction fails whole. Once the
cluster is back, the same server process answers again, and nothing committed before is lost.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import text

from registry import migrations, store
from registry.auth import create_token
from registry.db import make_engine, write_session
from tests.api.conftest import TRACK, assert_problem
from tests.conftest import POSTGRES_URL
from tests.faults.conftest import assert_consistent, http_client, waiting_behind

pytestmark = pytest.mark.slow
PATIENCE = 120.0  # the client's timeout: generous, so that a hang shows as an error, not a pass
BURST = 40  # more requests at once than the server's pool (10 + 20 overflow) holds
POOL = 30  # the server's pool: 10 connections + 20 overflow (registry.db.make_engine)
POOL_TIMEOUT_S = 1  # how long the busy server's request waits for one (default 10 s)


def test_postgres_down_answers_503_then_recovers_without_a_restart(
        private_postgres, artefacts_root, make_bundle, serve) -> None:
    engine = make_engine(private_postgres.url)
    migrations.upgrade(engine)
    versions = []
    with write_session(engine) as session:
        tokens = {scope: create_token(session, name=f"{scope}-bot", scope=scope)[1]
                  for scope in ("read", "admin")}
    for label in ("v1-a", "v2-b", "v3-c", "v4-d"):
        version_id, fingerprint = make_bundle(label)
        with write_session(engine) as session:
            store.register_version(session, track=TRACK, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=artefacts_root,
                                   actor="test")
        versions.append(version_id)
    server = serve(private_postgres.url, artefacts_root)
    pid = server.process.pid
    with http_client(server.url, tokens["admin"], timeout=PATIENCE) as admin, \
            http_client(server.url, tokens["read"], timeout=PATIENCE) as reader:
        for version_id in versions[:2]:
            assert admin.post(f"/versions/{version_id}/promote",
                              json={"reason": "before", "force": True}).status_code == 200
        before = assert_consistent(engine, TRACK)
        assert before == versions[1]

        # A promotion caught inside its transaction: it waits on a row the test holds.
        blocker = engine.connect()
        blocker.begin()
        blocker.execute(text("SELECT 1 FROM model_version WHERE version_id = :v FOR UPDATE"),
                        {"v": versions[2]})
        holder = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        caught: list[httpx.Response] = []
        inside = threading.Thread(target=lambda: caught.append(admin.post(
            f"/versions/{versions[2]}/promote", json={"reason": "during", "force": True})))
        inside.start()
        deadline = time.monotonic() + 60
        while not waiting_behind(blocker, holder):
            assert time.monotonic() < deadline and inside.is_alive(), caught
            time.sleep(0.01)

        private_postgres.stop("immediate")
        inside.join(timeout=PATIENCE)
        blocker.invalidate()
        engine.dispose()
        assert_problem(caught[0], 503, "database_unavailable")

        assert_problem(reader.get("/health"), 503, "database_unavailable")
        assert_problem(reader.get(f"/tracks/{TRACK}/champion"), 503, "database_unavailable")
        assert_problem(admin.post(f"/versions/{versions[3]}/promote",
                                  json={"reason": "down", "force": True}), 503,
                       "database_unavailable")
        assert_problem(admin.post(f"/tracks/{TRACK}/rollback", json={"reason": "down"}), 503,
                       "database_unavailable")
        with ThreadPoolExecutor(max_workers=BURST) as pool:
            burst = list(pool.map(lambda _: reader.get(f"/tracks/{TRACK}/champion"), range(BURST)))
        assert {(r.status_code, r.json()["code"]) for r in burst} == {
            (503, "database_unavailable")}

        private_postgres.start()
        assert reader.get("/health").json()["database"] == "ok"
        assert reader.get(f"/tracks/{TRACK}/champion").json()["version_id"] == before
        assert server.process.poll() is None and server.process.pid == pid  # never restarted
        assert assert_consistent(engine, TRACK) == before  # the interrupted promotion left nothing
        promoted = admin.post(f"/versions/{versions[3]}/promote",
                              json={"reason": "after", "force": True})
        assert promoted.status_code == 200, promoted.text
        assert reader.get(f"/tracks/{TRACK}/champion").json()["version_id"] == versions[3]
        audit = reader.get(f"/tracks/{TRACK}/audit").json()["items"]
        assert [(a["action"], a["version_id"]) for a in audit if a["action"] != "register"] == [
            ("promote", versions[3]), ("promote", versions[1]), ("promote", versions[0])]
        assert assert_consistent(engine, TRACK) == versions[3]
    engine.dispose()


@pytest.mark.skipif(not POSTGRES_URL, reason="PODIUM_TEST_POSTGRES_URL not set")
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_database_too_slow_to_free_a_connection_answers_503(db_url, engine, tokens, register,
                                                               artefacts_root, serve) -> None:
    """Every pooled connection is stuck in a transaction waiting on a lock: the next request
    waits for the pool's timeout (``database.pool_timeout_s``), then answers 503
    ``database_busy`` (not a 500)."""
    stuck = [register(f"v{k}-stuck") for k in range(POOL + 1)]
    server = serve(db_url, artefacts_root, database={"pool_timeout_s": POOL_TIMEOUT_S})
    with http_client(server.url, tokens["admin"], timeout=PATIENCE) as admin, \
            http_client(server.url, tokens["read"], timeout=PATIENCE) as reader:
        assert admin.post(f"/versions/{stuck.pop()}/promote",
                          json={"reason": "first", "force": True}).status_code == 200
        assert reader.get(f"/tracks/{TRACK}/champion").status_code == 200  # the reader's token
        blocker = engine.connect()
        blocker.begin()
        blocker.execute(text("SELECT 1 FROM track WHERE name = :t FOR UPDATE"), {"t": TRACK})
        holder = blocker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with ThreadPoolExecutor(max_workers=POOL) as pool:
            try:
                promotions = [pool.submit(admin.post, f"/versions/{version_id}/promote",
                                          json={"reason": "queued", "force": True})
                              for version_id in stuck]
                deadline = time.monotonic() + 60
                while len(waiting_behind(blocker, holder)) < POOL:
                    assert time.monotonic() < deadline, "the promotions did not all start"
                    time.sleep(0.05)
                busy = reader.get(f"/tracks/{TRACK}/champion")
            finally:
                blocker.rollback()
                blocker.close()
            assert {p.result().status_code for p in promotions} == {200}
        assert_problem(busy, 503, "database_busy")
        assert assert_consistent(engine, TRACK)

