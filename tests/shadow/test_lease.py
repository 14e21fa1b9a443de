"""The shadow lease: renewed on a heartbeat, lapsing after missed beats, saying who holds it."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from registry.config import ShadowConfig
from registry.db import write_session
from registry.models import ShadowLease, utcnow
from shadow.cli import LEASE_HELD
from shadow.lease import LeaseHeartbeat, acquire_lease, current_lease, lease_holder, new_holder
from shadow.runner import lease_name
from tests.registry.test_cli import BIN


def _eventually(check: Callable[[], bool], *, within: float = 20.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return check()


def test_a_heartbeat_keeps_the_lease_well_past_its_length(engine: Engine) -> None:
    assert acquire_lease(engine, holder="a", seconds=0.6) is not None
    heartbeat = LeaseHeartbeat(engine, holder="a", seconds=0.6).start()
    try:
        first = current_lease(engine).expires_at
        assert _eventually(lambda: current_lease(engine).expires_at > first)
        time.sleep(1.5)  # more than twice the lease's length
        assert acquire_lease(engine, holder="b", seconds=60) is None
        assert not heartbeat.lost
    finally:
        heartbeat.stop()


def test_a_dead_holder_s_lease_lapses_after_missed_beats_and_is_taken_over(
        engine: Engine) -> None:
    assert ShadowConfig().lease_seconds == 30  # a killed runner blocks scoring for 30 s at most
    assert acquire_lease(engine, holder="dead", seconds=0.6) is not None
    heartbeat = LeaseHeartbeat(engine, holder="dead", seconds=0.6).start()
    heartbeat.stop()  # kill -9: the beats stop, nothing is released
    assert current_lease(engine).holder == "dead"
    assert _eventually(lambda: acquire_lease(engine, holder="next", seconds=60) is not None)
    assert current_lease(engine).holder == "next"


def test_a_heartbeat_that_finds_the_lease_taken_says_it_is_lost(engine: Engine) -> None:
    assert acquire_lease(engine, holder="a", seconds=0.6) is not None
    heartbeat = LeaseHeartbeat(engine, holder="a", seconds=0.6).start()
    try:
        with write_session(engine) as session:
            lease = session.get(ShadowLease, "shadow-run")
            lease.holder, lease.expires_at = "thief", utcnow() + dt.timedelta(hours=1)
            session.add(lease)
            session.commit()
        assert _eventually(lambda: heartbeat.lost)
        assert current_lease(engine).holder == "thief"
    finally:
        heartbeat.stop()


def test_the_holder_is_named_by_host_pid_and_since(engine: Engine) -> None:
    assert lease_holder(engine) is None
    before = utcnow()
    holder = new_holder()
    assert acquire_lease(engine, holder=holder, seconds=60) is not None
    acquire_lease(engine, holder=holder, seconds=60)  # a renewal keeps "since"
    shown = lease_holder(engine)
    assert shown is not None
    assert (shown.host, shown.pid) == (socket.gethostname(), str(os.getpid()))
    assert before - dt.timedelta(seconds=1) <= shown.since <= utcnow()
    assert shown.since == lease_holder(engine).since
    text = shown.describe()
    assert f"host {socket.gethostname()}, pid {os.getpid()}, since " in text


def test_shadow_run_exits_3_naming_the_holder_when_another_runner_holds_the_lease(
        db_url: str, engine: Engine, tmp_path: Path) -> None:
    assert acquire_lease(engine, holder="worker-7:4242:abcdef", seconds=600,
                         name=lease_name("equities-daily")) is not None  # the default track
    (tmp_path / "podium.yaml").write_text("artefacts_root: artefacts\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    result = subprocess.run([str(BIN / "shadow"), "run"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**env, "PODIUM_DATABASE_URL": db_url})
    assert result.returncode == LEASE_HELD == 3, result.stderr
    assert "another runner holds the shadow lease (host worker-7, pid 4242, since " in \
        result.stdout.replace("\n", " ")
    assert "nothing done" in result.stdout
