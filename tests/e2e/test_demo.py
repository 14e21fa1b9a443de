"""`registry demo` end to end, as a user runs it: a real subprocess on examples/tiny.yaml.

The first run (``--no-serve``) starts from nothing; the serving test re-runs the demo on the
same files, so it also shows that a re-run reuses the registry, the market and the versions.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import func
from sqlmodel import col, select

from registry import store
from registry.client import Client
from registry.config import PodiumConfig, load_config
from registry.db import make_engine, read_session
from registry.errors import NotFound
from registry.evidence import read_leaderboard
from registry.models import ShadowScore
from tests.conftest import JAX_CACHE_ENV, REPO
from tests.e2e.conftest import BIN

# one worker runs this module: its module fixture is built once
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("demo")]

SPECS = {"linear-5d", "resmom", "fast-1d"}  # tiny.yaml's active specs
URL_LINE = re.compile(r"serving the real API at (http://127\.0\.0\.1:\d+)/api/v1")


@dataclass(frozen=True)
class DemoRun:
    config_path: Path
    config: PodiumConfig
    returncode: int
    output: str


def demo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")}
    env.update(WANDB_MODE="disabled", COLUMNS="200", PYTHONUNBUFFERED="1")
    env[JAX_CACHE_ENV] = os.environ[JAX_CACHE_ENV]  # the worker's warm cache (tests/conftest.py)
    return env


def demo_command(config: Path, *args: str) -> list[str]:
    return [str(BIN / "registry"), "demo", "--config", str(config), "--port", "0", *args]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> DemoRun:
    """`registry demo --no-serve` on a copy of tiny.yaml whose paths point into a temp dir."""
    base = tmp_path_factory.mktemp("demo")
    raw = yaml.safe_load((REPO / "examples" / "tiny.yaml").read_text())
    raw["database"]["url"] = "sqlite:///var/podium.db"  # relative to the copy
    raw["artefacts_root"] = "var/artefacts"
    raw.setdefault("server", {})["header_timeout_s"] = 1  # the serving test's slow client
    config_path = base / "tiny.yaml"
    config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    done = subprocess.run(demo_command(config_path, "--no-serve"), cwd=base, env=demo_env(),
                          capture_output=True, text=True, timeout=300)
    return DemoRun(config_path, load_config(config_path, environ={}), done.returncode,
                   done.stdout + done.stderr)


@pytest.fixture
def demo_engine(first_run: DemoRun) -> Iterator:
    engine = make_engine(first_run.config.database.url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_the_demo_trains_scores_crowns_and_promotes_over_rest(first_run: DemoRun,
                                                               demo_engine) -> None:
    out = first_run.output
    assert first_run.returncode == 0, out[-4000:]
    assert first_run.config.database.url.startswith("sqlite:///")
    with read_session(demo_engine) as session:
        versions = store.list_versions(session, track=first_run.config.track)
        scored = dict(session.exec(select(ShadowScore.version_id, func.count())
                                   .group_by(col(ShadowScore.version_id))).all())
        audit = store.list_audit(session, track=first_run.config.track, limit=500)
    # Trained through the zoo and registered, one challenger per active spec.
    assert {v.spec_name for v in versions} == SPECS
    for version in versions:
        assert f"registered {version.spec_name} → {version.version_id}" in out
        # Scored in shadow: at least the gate's minimum of days, for every version.
        assert scored.get(version.version_id, 0) >= first_run.config.gate.min_days
    # The audit trail agrees with the states: every version registered once, and each
    # version's latest transition leads to the state it is in now.
    registered = [e.version_id for e in audit if e.action == "register"]
    assert sorted(registered) == sorted(v.version_id for v in versions)
    for version in versions:
        latest = next(e for e in audit if e.version_id == version.version_id)
        assert latest.to_state == version.state
    champions = [v for v in versions if v.state == "champion"]
    promotions = [e for e in audit if e.action == "promote"]
    if champions:
        first = promotions[-1]  # oldest first in the reversed list
        assert first.actor == "demo" and first.from_state == "challenger"
        assert first.gate_report["verdict"] == "PASS" and not first.forced
        assert f"crowned {first.version_id} the first champion" in out
        assert f"comparisons start at {first.version_id}'s first day as champion" in out
    else:
        assert "no first champion" in out and not promotions
    # The best challenger went through the REST API: promoted (the audit names the demo's
    # token) or refused by the gate, with its reasons printed.
    match = re.search(r"POST (http://127\.0\.0\.1:\d+)/api/v1/versions/(\S+)/promote", out)
    assert match, out[-4000:]
    url, best = match.groups()
    if "promoted (200)" in out:
        assert promotions[0].version_id == best and promotions[0].actor.startswith("demo-")
    else:
        assert "refused (409): the gate says" in out
        assert re.search(r"Reasons:\n  - \S", out)
        refused = audit[0]  # the refusal is on the record, and nothing moved
        assert (refused.action, refused.version_id) == ("promote_refused", best)
        assert refused.actor.startswith("demo-") and refused.gate_report["passed"] is False
    # The lines a user types next, with the real URL, $PODIUM_TOKEN and the track.
    auth = '-H "Authorization: Bearer $PODIUM_TOKEN"'
    track = first_run.config.track
    assert f"curl -s {url}/api/v1/tracks/{track}/champion {auth}" in out
    assert f"curl -s {url}/api/v1/tracks/{track}/leaderboard {auth}" in out
    assert f"curl -s -X POST {url}/api/v1/versions/{best}/promote {auth}" in out
    assert re.search(r"^export PODIUM_TOKEN=pod_\S+$", out, re.MULTILINE)
    assert f"the leaderboard page: {url}/" in out


def test_the_serving_demo_lands_days_and_stops_cleanly_on_ctrl_c(first_run: DemoRun,
                                                                 demo_engine) -> None:
    assert first_run.returncode == 0, first_run.output[-4000:]
    config = first_run.config
    log_path = first_run.config_path.parent / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(demo_command(first_run.config_path, "--tick-seconds", "1"),
                                   cwd=first_run.config_path.parent, env=demo_env(),
                                   stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        url = wait_for(lambda: URL_LINE.search(log_path.read_text()), process, log_path)[1]
        assert httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200
        assert_served_as_registry_serve_is(url)
        wait_for(lambda: "until Ctrl-C" in log_path.read_text(), process, log_path)
        out = log_path.read_text()
        # A re-run: same versions (the zoo skipped every spec), nothing trained again.
        for spec in SPECS:
            assert re.search(rf"^skipped {spec} → ", out, re.MULTILINE), out[-4000:]
        assert "reusing the database" in out and "reusing market 'tiny'" in out
        # While it serves, new market days land and are scored: the leaderboard moves.
        before = leaderboard_days(demo_engine, config)
        wait_for(lambda: leaderboard_days(demo_engine, config) > before, process, log_path)
        wait_for(lambda: re.search(r"shadow tick: market through \S+; [1-9]\d* new score",
                                   log_path.read_text()), process, log_path)
        # Consumers resolve the champion over REST (public reads on loopback: no token).
        with read_session(demo_engine) as session:
            champion = store.list_versions(session, track=config.track, state="champion")
        with Client(url, token="") as client:
            if champion:
                assert client.champion(config.track)["version_id"] == champion[0].version_id
            else:
                with pytest.raises(NotFound):
                    client.champion(config.track)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, log_path.read_text()[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    out = log_path.read_text()
    assert "stopped cleanly" in out and "Traceback" not in out


def test_bad_config_exits_2_and_a_busy_port_exits_1(tmp_path: Path) -> None:
    missing = subprocess.run(demo_command(tmp_path / "nope.yaml", "--no-serve"), cwd=tmp_path,
                             env=demo_env(), capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2
    assert "nope.yaml: configuration file not found" in missing.stderr
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        command = demo_command(REPO / "examples" / "tiny.yaml", "--no-serve")
        command[command.index("--port") + 1] = port
        taken = subprocess.run(command, cwd=tmp_path, env=demo_env(), capture_output=True,
                               text=True, timeout=60)
    assert taken.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in taken.stderr
    assert "[1/8]" not in taken.stdout  # it fails before doing any work


def assert_served_as_registry_serve_is(url: str) -> None:
    """The demo's server checks the Host header and drops a half-sent request, as `registry
    serve` does (the same uvicorn settings)."""
    refused = httpx.get(f"{url}/api/v1/tracks", headers={"Host": "rebind.attacker.test"},
                        timeout=5)
    assert refused.status_code == 400 and refused.json()["code"] == "invalid_host"
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
        slow.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        assert slow.recv(1) == b""  # closed by the server after header_timeout_s (1 s)


def leaderboard_days(engine, config: PodiumConfig) -> int:
    """Scored days summed over the track's leaderboard rows (what the page shows)."""
    with read_session(engine) as session:
        board = read_leaderboard(session, track=config.track, config=config)
    return sum(row["metrics"].get("days") or 0 for row in board["rows"])


def wait_for(condition, process: subprocess.Popen, log_path: Path, timeout: float = 180):
    deadline = time.monotonic() + timeout
    while True:
        if (found := condition()):
            return found
        if process.poll() is not None:
            raise AssertionError(f"the demo exited ({process.returncode}):\n"
                                 + log_path.read_text()[-4000:])
        if time.monotonic() > deadline:
            raise AssertionError("timed out; the demo's log:\n" + log_path.read_text()[-4000:])
        time.sleep(0.2)
