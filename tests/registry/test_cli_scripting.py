"""The CLIs for scripts and people: --json, --version, declared choices, one error for an
unknown track, the same option shapes, completion. Run in-process on each database."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from registry import cli as registry_cli
from registry.console import run
from shadow import cli as shadow_cli
from tests.api.conftest import TRACK
from tests.api.test_page import seed_board
from tests.registry.test_cli import BIN
from zoo import cli as zoo_cli

Invoke = Callable[..., tuple[int, str, str]]


@pytest.fixture
def invoke(engine, db_url: str, artefacts_root: Path, tmp_path: Path, monkeypatch,
           capsys) -> Invoke:
    """``invoke(app, *argv)`` → ``(exit code, stdout, stderr)`` against the test's database."""
    for name in ("PODIUM_CONFIG", "PODIUM_URL", "PODIUM_TOKEN", "PODIUM_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    config = tmp_path / "podium.yaml"
    config.write_text("{}\n")
    monkeypatch.setenv("PODIUM_CONFIG", str(config))
    monkeypatch.setenv("PODIUM_DATABASE_URL", db_url)
    monkeypatch.setenv("PODIUM_ARTEFACTS_ROOT", str(artefacts_root))
    monkeypatch.setenv("COLUMNS", "200")

    def _invoke(app, *argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = run(app, list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return _invoke


@pytest.mark.parametrize("app", [registry_cli.app, zoo_cli.app, shadow_cli.app])
def test_each_command_tells_its_version_and_lists_debug(invoke: Invoke, app) -> None:
    from importlib import metadata

    code, out, _ = invoke(app, "--version")
    assert code == 0 and out.strip() == f"podium {metadata.version('podium')}"
    code, out, _ = invoke(app, "--help")
    assert code == 0
    assert "--debug" in out and "--install-completion" in out and "--version" in out


@pytest.mark.parametrize(("argv", "choices"), [
    (["versions", "--help"], "<challenger|champion|retired>"),
    (["token", "create", "--help"], "<read|promote|admin>"),
    (["serve", "--help"], "<debug|info|warning|error>"),
    (["promote", "--help"], "{VERSION_ID}"),
    (["rollback", "--help"], "{TRACK}"),
    (["token", "revoke", "--help"], "{NAME}"),
])
def test_help_lists_the_choices_and_names_the_arguments(invoke: Invoke, argv, choices) -> None:
    code, out, _ = invoke(registry_cli.app, *argv)
    assert code == 0 and choices in out


@pytest.mark.parametrize("argv", [
    ["versions", "--state", "king"], ["token", "create", "x", "--scope", "root"],
    ["serve", "--log-level", "loud"]])
def test_a_value_outside_the_choices_is_a_usage_error(invoke: Invoke, argv) -> None:
    code, out, err = invoke(registry_cli.app, *argv)
    assert code == 2 and not out
    assert "Invalid value for '--" in err and "is not one of" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["versions", "audit", "leaderboard"])
def test_an_unknown_track_is_the_same_usage_error_everywhere(invoke: Invoke, register,
                                                             command: str) -> None:
    register("v1-a")
    code, out, err = invoke(registry_cli.app, command, "--track", "nope")
    assert code == 2 and not out
    assert ("Invalid value for '--track': no track named 'nope' (tracks: "
            f"{TRACK})") in err
    code, _, _ = invoke(registry_cli.app, command, "--track", TRACK)
    assert code == 0


def test_versions_and_audit_as_json(invoke: Invoke, register) -> None:
    first, second = register("v1-a"), register("v2-b")
    code, out, _ = invoke(registry_cli.app, "versions", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [v["version_id"] for v in listed] == [second, first]
    assert {v["state"] for v in listed} == {"challenger"} and listed[0]["track"] == TRACK
    code, out, _ = invoke(registry_cli.app, "versions", "--json", "--state", "champion")
    assert code == 0 and json.loads(out) == []
    code, out, _ = invoke(registry_cli.app, "audit", "--json", "--track", TRACK)
    entries = json.loads(out)
    assert code == 0 and [(e["action"], e["version_id"]) for e in entries] == [
        ("register", second), ("register", first)]
    assert entries[0]["created_at"].endswith(("Z", "+00:00"))


def test_leaderboard_as_json_is_what_the_api_returns(invoke: Invoke, engine, artefacts_root,
                                                     make_bundle) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    code, out, _ = invoke(registry_cli.app, "leaderboard", "--json")
    assert code == 0
    (board,) = json.loads(out)
    assert board["track"] == TRACK and board["winner"] == ids["better"]
    assert [r["version_id"] for r in board["rows"]][:3] == [
        ids["champion"], ids["better"], ids["worse"]]
    assert len(board["curves"][ids["champion"]]["days"]) == 200


def test_tokens_take_their_name_the_same_way_and_list_as_json(invoke: Invoke) -> None:
    code, out, err = invoke(registry_cli.app, "token", "create", "deployer", "--scope",
                            "promote")
    assert code == 0 and out.startswith("pod_") and "shown only this once" in err
    code, out, _ = invoke(registry_cli.app, "token", "create", "--name", "reader", "--scope",
                          "read")  # the older spelling still works
    assert code == 0 and out.startswith("pod_")
    code, _, err = invoke(registry_cli.app, "token", "create", "a", "--name", "b", "--scope",
                          "read")
    assert code == 2 and "two names given ('a' and --name 'b')" in err
    code, _, err = invoke(registry_cli.app, "token", "create", "--scope", "read")
    assert code == 2 and "give the token's NAME" in err
    assert invoke(registry_cli.app, "token", "revoke", "reader")[0] == 0
    code, out, _ = invoke(registry_cli.app, "token", "list", "--json")
    listed = json.loads(out)
    assert code == 0 and [(t["name"], t["scope"]) for t in listed] == [
        ("deployer", "promote"), ("reader", "read")]
    assert listed[0]["revoked_at"] is None and listed[1]["revoked_at"]
    assert "pod_" not in out and "hash" not in out


@pytest.mark.parametrize("argv", [["promote", "v1-x", "--reason", "r"],
                                  ["retire", "v1-x", "--reason", "r"],
                                  ["rollback", TRACK, "--reason", "r"]])
def test_a_rest_command_without_a_token_says_how_to_give_one(invoke: Invoke, argv) -> None:
    code, out, err = invoke(registry_cli.app, *argv)
    assert code == 2 and not out
    assert "pass --token TOKEN or set $PODIUM_TOKEN" in " ".join(err.split())


def test_zoo_list_and_shadow_run_as_json(invoke: Invoke, register) -> None:
    code, out, _ = invoke(zoo_cli.app, "--list", "--json")
    assert code == 0
    listing = json.loads(out)
    assert listing["track"] == TRACK and listing["allowed_overrides"]
    assert all({"spec", "status", "overrides", "latest_version", "state", "last_run"}
               <= set(s) for s in listing["specs"])
    code, out, _ = invoke(shadow_cli.app, "run", "--json")
    summary = json.loads(out)
    assert code == 0 and {"ran", "detail", "settled", "tracks", "unconfigured"} <= set(summary)
    (track,) = summary["tracks"]
    assert track["track"] == TRACK and {"last_landed", "versions", "error"} <= set(track)


def test_completion_is_on(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PODIUM_")},
           "_REGISTRY_COMPLETE": "complete_bash", "COMP_WORDS": "registry ver",
           "COMP_CWORD": "1"}
    result = subprocess.run([str(BIN / "registry")], env=env, capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    assert result.returncode == 0 and "versions" in result.stdout.split()


def test_zoo_on_a_cluster_says_what_is_wrong(invoke: Invoke) -> None:
    code, out, err = invoke(zoo_cli.app, "--all-active", "--address", "127.0.0.1:9")
    assert code == 2 and not out
    assert "--address names a Ray cluster: use it with --executor ray" in err
    code, _, err = invoke(zoo_cli.app, "--all-active", "--executor", "fleet")
    assert code == 2 and "'fleet' is not one of 'local', 'ray'" in err
    pytest.importorskip("ray")
    code, out, err = invoke(zoo_cli.app, "--all-active", "--executor", "ray",
                            "--address", "127.0.0.1:9")
    assert code == 1 and not out
    assert "error: no Ray cluster answers at 127.0.0.1:9 (Connection refused); start one" in err
    assert "Traceback" not in err
