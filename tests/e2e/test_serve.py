"""End to end against a real server process: concurrent promotions, read-your-writes, the CLI."""

from __future__ import annotations

import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlmodel import col, select

from registry.client import Client
from registry.db import read_session
from registry.errors import ChampionChanged, GateRejected, InvalidInput, Unauthorized
from registry.models import AuditEntry, Event, ModelVersion
from tests.api.conftest import TRACK
from tests.e2e.conftest import BIN

pytestmark = pytest.mark.slow


def test_twenty_concurrent_promotions_crown_exactly_one(server, tokens, register,
                                                        engine) -> None:
    incumbent = register("v0-incumbent")
    challengers = [register(f"v{i}-challenger") for i in range(1, 21)]
    admin = Client(server.url, tokens["admin"])
    admin.promote(incumbent, "first champion", force=True, expected_champion="")
    barrier = threading.Barrier(len(challengers))

    def attempt(version_id: str) -> tuple[str, int, str]:
        with httpx.Client(base_url=server.url, timeout=60,
                          headers={"Authorization": f"Bearer {tokens['admin']}"}) as http:
            barrier.wait()
            response = http.post(f"/api/v1/versions/{version_id}/promote",
                                 json={"reason": "race", "force": True,
                                       "expected_champion": incumbent})
            return version_id, response.status_code, response.json()["code"] if \
                response.status_code != 200 else "ok"

    with ThreadPoolExecutor(max_workers=len(challengers)) as pool:
        results = list(pool.map(attempt, challengers))
    winners = [vid for vid, status, _ in results if status == 200]
    assert len(winners) == 1, results
    assert sorted(code for _, status, code in results if status != 200) == \
        ["champion_changed"] * 19
    assert admin.champion(TRACK)["version_id"] == winners[0]
    with read_session(engine) as session:
        champions = session.exec(select(ModelVersion.version_id)
                                 .where(ModelVersion.state == "champion")).all()
        promotions = session.exec(select(AuditEntry).where(AuditEntry.action == "promote")
                                  .order_by(col(AuditEntry.id))).all()
        retired = session.exec(select(ModelVersion.version_id)
                               .where(ModelVersion.state == "retired")).all()
        events = session.exec(select(Event).where(Event.kind == "version.promoted")).all()
    assert champions == [winners[0]] and retired == [incumbent]
    assert [(a.version_id, a.displaced_version_id) for a in promotions] == [
        (incumbent, None), (winners[0], incumbent)]
    assert len(events) == 2
    admin.close()


def test_resolve_right_after_a_promote_sees_the_new_champion(server, tokens,
                                                             register) -> None:
    versions = [register(f"v{i}-linear") for i in range(4)]
    spare = register("v9-spare")
    with Client(server.url, tokens["admin"]) as admin, \
            Client(server.url, tokens["read"]) as reader:
        for version_id in versions:
            answer = admin.promote(version_id, "rotate", force=True)
            assert answer["transition"]["version_id"] == version_id
            assert reader.champion(TRACK)["version_id"] == version_id
        with pytest.raises(ChampionChanged, match="someone promoted first") as caught:
            admin.promote(spare, "stale", force=True, expected_champion=versions[1])
        assert caught.value.extra["current_champion"] == versions[-1]
        rolled = admin.rollback(TRACK, "the newest misbehaves")
        assert rolled["transition"]["version_id"] == versions[-2]
        assert reader.champion(TRACK)["version_id"] == versions[-2]
        assert [v["version_id"] for v in reader.versions(state="champion")] == [versions[-2]]
        with Client(server.url, "pod_nope") as stranger, pytest.raises(Unauthorized):
            stranger.champion(TRACK)
        with pytest.raises(InvalidInput, match="invalid version id"):
            reader.version("../etc")


def test_cli_promote_rollback_retire_over_rest(server, tokens, register) -> None:
    first, second, spare = register("v1-a"), register("v2-b"), register("v3-c")
    fresh = register("v4-d")

    def cli(*args: str, token: str = "admin") -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "registry"), *args],
                              env={**server.env, "PODIUM_TOKEN": tokens[token]},
                              capture_output=True, text=True, timeout=60)

    refused = cli("promote", first, "--reason", "try the gate", token="promote")
    assert refused.returncode == 1
    assert "INSUFFICIENT_DATA" in refused.stdout and "the gate refuses" in refused.stderr
    assert "Traceback" not in refused.stderr
    ok = cli("promote", first, "--reason", "bootstrap", "--force", "--expect-champion", "")
    assert ok.returncode == 0, ok.stderr
    assert f"promote (forced): {first}" in ok.stdout
    stale = cli("promote", second, "--reason", "x", "--force", "--expect-champion", spare)
    assert stale.returncode == 1 and "someone promoted first" in stale.stderr
    assert cli("promote", second, "--reason", "better", "--force").returncode == 0
    rolled = cli("rollback", TRACK, "--reason", "regression", token="promote")
    assert rolled.returncode == 0 and f"rollback: {first}" in rolled.stdout
    retired = cli("retire", spare, "--reason", "unused", token="promote")
    assert retired.returncode == 0 and "retired" in retired.stdout
    forbidden = cli("promote", second, "--reason", "x", "--force", token="read")
    assert forbidden.returncode == 1 and "scope" in forbidden.stderr
    with Client(server.url, tokens["read"]) as reader, \
            Client(server.url, tokens["promote"]) as promoter:
        assert reader.champion(TRACK)["version_id"] == first
        with pytest.raises(GateRejected) as caught:
            promoter.promote(fresh, "gate please")
        assert caught.value.extra["gate"]["passed"] is False
