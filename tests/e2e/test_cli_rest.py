"""``registry promote / retire / rollback`` against a real server: readable refusals, --json."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.api.conftest import TRACK
from tests.e2e.conftest import BIN

pytestmark = pytest.mark.slow


def test_refusals_read_rule_by_rule_and_every_answer_has_json(server, tokens, register) -> None:
    first, second, spare = register("v1-a"), register("v2-b"), register("v3-c")

    def cli(*args: str, token: str = "admin") -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "registry"), *args],
                              env={**server.env, "PODIUM_TOKEN": tokens[token],
                                   "COLUMNS": "200"},
                              capture_output=True, text=True, timeout=60)

    refused = cli("promote", first, "--reason", "try the gate", token="promote")
    assert refused.returncode == 1 and "the gate refuses" in refused.stderr
    assert f"gate: INSUFFICIENT_DATA for {first}" in refused.stdout
    assert "paired days" in refused.stdout and "0.000" not in refused.stdout
    assert len(refused.stdout.splitlines()) < 20  # the verdict, its rules, its reasons

    as_json = cli("promote", first, "--reason", "try the gate", "--json", token="promote")
    problem = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and problem["code"] == "gate_rejected"
    assert problem["gate"]["verdict"] == "INSUFFICIENT_DATA"

    crowned = cli("promote", first, "--reason", "bootstrap", "--force", "--json")
    assert crowned.returncode == 0, crowned.stderr
    moved = json.loads(crowned.stdout)["transition"]
    assert (moved["action"], moved["version_id"], moved["to_state"], moved["forced"]) == (
        "promote", first, "champion", True)
    assert cli("promote", second, "--reason", "next", "--force").returncode == 0
    rolled_back = cli("rollback", TRACK, "--reason", "regression", "--json")
    assert rolled_back.returncode == 0, rolled_back.stderr
    rolled = json.loads(rolled_back.stdout)
    assert rolled["transition"]["version_id"] == first
    assert rolled["transition"]["to_state"] == "champion"
    retired = json.loads(cli("retire", spare, "--reason", "unused", "--json").stdout)
    assert retired["transition"]["to_state"] == "retired"
