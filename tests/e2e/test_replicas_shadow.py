"""Two ``registry serve`` replicas on one database and one bucket, each running the scheduled
shadow job, on a panel track whose data lands in the same bucket: every (version, day) is scored
exactly once, both replicas take turns under the track's lease (the one that finds it held says
by whom), and killing the holder mid-run loses nothing: the other takes over once the lease has
expired and scores what lands next."""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from sqlmodel import select

from registry import store
from registry.db import read_session, write_session
from registry.integrity import bundle_key, commit_bundle
from registry.models import ModelVersion, ShadowError, ShadowScore
from registry.storage import ObjectStore
from registry.testing import RegistryServer
from shadow.lease import current_lease
from shadow.runner import lease_name
from tests.conftest import S3_TEST_OPTIONS
from tests.shadow.conftest import (
    OWN_DATA,
    PANEL_LANDED,
    land_panel,
    upload_panel,
)

pytestmark = pytest.mark.slow
TRACK = "own-equities"
TICK_SECONDS, LEASE_SECONDS = 2, 5  # the shortest lease the configuration allows
WAIT_SECONDS = 300.0  # for a batch of landed days to be scored (two replicas, a loaded machine)


def replica(name: str, db_url: str, bucket: ObjectStore, panel_url: str, endpoint: str,
            tmp_path: Path) -> RegistryServer:
    workdir = tmp_path / name
    workdir.mkdir()
    config = yaml.safe_load(OWN_DATA.read_text())
    config["data"]["path"] = panel_url
    config["shadow"] = {**config["shadow"], "in_serve": True, "lease_seconds": LEASE_SECONDS,
                        "schedule": f"@every {TICK_SECONDS}s"}
    server = RegistryServer(database_url=db_url, artefacts_root=bucket.url, workdir=workdir,
                            config=config, log_level="info")
    server.env.update(AWS_ENDPOINT_URL=endpoint, AWS_REGION=S3_TEST_OPTIONS["region"],
                      AWS_ACCESS_KEY_ID=S3_TEST_OPTIONS["access_key_id"],
                      AWS_SECRET_ACCESS_KEY=S3_TEST_OPTIONS["secret_access_key"])
    return server


def expected_scores(engine: Engine, landed: list[str]) -> set[tuple[str, str]]:
    """Every (version, day) that can settle: after the version's cutoff, before the last day."""
    with read_session(engine) as session:
        cutoffs = {v.version_id: v.train_cutoff.isoformat()
                   for v in session.exec(select(ModelVersion)).all()}
    return {(v, day) for v, cutoff in cutoffs.items() for day in landed[:-1] if day > cutoff}


def scored(engine: Engine) -> list[tuple[str, str]]:
    with read_session(engine) as session:
        return [(s.version_id, s.day.isoformat()) for s in session.exec(select(ShadowScore))]


def wait_scored(engine: Engine, landed: list[str], *servers: RegistryServer) -> None:
    want, deadline = expected_scores(engine, landed), time.monotonic() + WAIT_SECONDS
    while set(scored(engine)) != want:
        assert time.monotonic() < deadline, (
            f"scored {len(scored(engine))} of {len(want)}\n"
            + "\n".join(f"--- {s.workdir.name}\n{s.log()[-3000:]}" for s in servers))
        time.sleep(0.5)


def landed_days(uploaded: set[str]) -> list[str]:
    return sorted({name.split("/")[0].removeprefix("date=") for name in uploaded})


def holder_pid(engine: Engine) -> str | None:
    lease = current_lease(engine, lease_name(TRACK))
    return None if lease is None else lease.holder.split(":")[1]


def test_replicas_share_the_shadow_job_on_a_panel_in_the_bucket(
        engine: Engine, db_url: str, bucket_store: ObjectStore, s3_endpoint: str,
        tmp_path: Path, panel_specs_trained) -> None:
    template_panel, template, versions = panel_specs_trained  # two built-in specs
    panel = tmp_path / "panel"
    shutil.copytree(template_panel, panel)
    bucket = bucket_store.url.removeprefix("s3://").split("/")[0]
    feeds = ObjectStore(f"s3://{bucket}/feeds", options={**S3_TEST_OPTIONS,
                        "endpoint": s3_endpoint}, timeout_seconds=10)
    uploaded = upload_panel(panel, feeds, "panel")
    for version_id, fingerprint, spec in versions:  # the bundles live in the bucket only
        key = bundle_key(track=TRACK, version_id=version_id)
        commit_bundle(bucket_store, template / key, key)
        with write_session(engine) as session:
            store.register_version(session, track=TRACK, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=bucket_store,
                                   actor="test", spec_name=spec)
    a = replica("a", db_url, bucket_store, f"{feeds.url}/panel", s3_endpoint, tmp_path)
    b = replica("b", db_url, bucket_store, f"{feeds.url}/panel", s3_endpoint, tmp_path)

    with a, b:
        land_panel(panel, PANEL_LANDED + 5)
        uploaded = upload_panel(panel, feeds, "panel", uploaded)
        wait_scored(engine, landed_days(uploaded), a, b)

        # A replica is killed while it holds the track's lease, in the middle of a run.
        land_panel(panel, PANEL_LANDED + 10)
        uploaded = upload_panel(panel, feeds, "panel", uploaded)
        killed = None
        deadline = time.monotonic() + WAIT_SECONDS
        while killed is None:
            assert time.monotonic() < deadline, "neither replica was seen holding the lease"
            holder = holder_pid(engine)
            victim = next((s for s in (a, b) if holder == str(s.process.pid)), None)
            if victim is not None:
                victim.kill()
                if holder_pid(engine) == holder:  # still its lease: it died holding it
                    killed = victim
                else:  # it had just let go; start it again and wait for its next turn
                    victim.start(healthy=True)
            time.sleep(0.01)
        survivor = b if killed is a else a
        wait_scored(engine, landed_days(uploaded), survivor)
        land_panel(panel, PANEL_LANDED + 15)  # and goes on scoring what lands next
        uploaded = upload_panel(panel, feeds, "panel", uploaded)
        wait_scored(engine, landed_days(uploaded), survivor)

    rows = scored(engine)
    assert len(rows) == len(set(rows)) == len(expected_scores(engine, landed_days(uploaded)))
    assert len(versions) == 2 and {v for v, _ in rows} == {v for v, _, _ in versions}
    with read_session(engine) as session:
        assert session.exec(select(ShadowError)).all() == []
    logs = {server: server.log() for server in (a, b)}
    # both ran the job on their ticks (the killed one was seen holding the lease, above) ...
    assert all("podium.shadow: shadow run: " in log for log in logs.values())
    # ... and the survivor found the lease held by the killed replica, then took it over
    # once it had expired, and scored
    held = (f"shadow run: another runner holds the shadow lease (host {socket.gethostname()}, "
            f"pid {killed.process.pid}, since ")
    assert held in logs[survivor], logs[survivor][-3000:]
    after = logs[survivor][logs[survivor].rindex(held):]
    assert "podium.shadow: shadow run: ok, " in after
