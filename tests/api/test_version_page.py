"""The page per version: history, provenance, shadow record, and evidence against the champion."""

from __future__ import annotations

import json
import re

import numpy as np

from registry import store
from registry.db import write_session
from tests.api.conftest import TRACK
from tests.api.test_page import assert_valid_html, seed_board


def _figure(text: str, name: str) -> dict:
    block = re.search(rf'<script type="application/json" id="figure-{name}">(.*?)</script>',
                      text, re.S)
    assert block, f"no {name} figure"
    return json.loads(block.group(1))


def test_a_challenger_page_shows_its_evidence_against_the_champion(
        make_client, engine, artefacts_root, make_bundle) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    client = make_client(public_reads=True)
    board = client.get("/").text
    assert f'<a href="/versions/{ids["better"]}">{ids["better"]}</a>' in board

    response = client.get(f"/versions/{ids['better']}")
    assert response.status_code == 200
    text = response.text
    assert_valid_html(text)
    assert "script-src 'self';" in response.headers["content-security-policy"]
    assert f'data-version="{ids["better"]}"' in text and "state-challenger" in text
    assert 'class="verdict verdict-PASS">PASS<' in text
    assert f'<a href="/versions/{ids["champion"]}">{ids["champion"]}</a>' in text
    assert "days scored</dt><dd>200 (" in text
    assert len(re.findall(r'<tr class="rule">', text)) >= 3  # the gate's rules or statistics
    assert re.search(r'<td class="text">register</td>', text)  # the audit history

    evidence = _figure(text, "evidence")
    names = [trace["name"] for trace in evidence["data"]]
    assert names == ["daily net difference", "running mean", "gate's lower bound"]
    rng = np.random.default_rng(11)  # seed_board's draws, in its order
    draws = {role: rng.normal(mean, 0.01, 200 if role != "retired" else 40) for role, mean in
             {"retired": 0.0, "champion": 2e-4, "better": 4e-3, "worse": -2e-3}.items()}
    d = draws["better"] - draws["champion"]
    np.testing.assert_allclose(evidence["data"][0]["y"], 1e4 * d, rtol=1e-9)
    np.testing.assert_allclose(evidence["data"][1]["y"][-1], 1e4 * d.mean(), rtol=1e-9)
    # the last bound is the one the gate reported through the API
    board = client.get(f"/api/v1/tracks/{TRACK}/leaderboard").json()
    (row,) = [r for r in board["rows"] if r["version_id"] == ids["better"]]
    decided = row["report"]["decided_on_day"]  # a group-sequential look decided it
    assert decided is not None and evidence["data"][2]["y"][decided:] == [None] * (200 - decided)
    np.testing.assert_allclose(evidence["data"][2]["y"][decided - 1],
                               1e4 * row["report"]["lower_bound"], rtol=1e-9)
    record = _figure(text, "record")
    np.testing.assert_allclose(record["data"][0]["y"], 100 * np.cumsum(draws["better"]),
                               rtol=1e-9)


def test_the_champion_page_has_its_record_and_history_but_no_gate(
        make_client, engine, artefacts_root, make_bundle) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    text = make_client(public_reads=True).get(f"/versions/{ids['champion']}").text
    assert_valid_html(text)
    assert "state-champion" in text and "champion since" in text
    assert "A champion is not judged by the gate." in text
    assert 'id="figure-evidence"' not in text and 'id="figure-record"' in text
    actions = re.findall(r'<td class="text">(register|promote)( \(forced\))?</td>', text)
    assert [a for a, _ in actions] == ["promote", "register"]  # newest first


def test_provenance_and_user_text_are_escaped(make_client, engine, artefacts_root,
                                              make_bundle) -> None:
    version_id, fingerprint = make_bundle("v1-a")
    with write_session(engine) as session:
        store.register_version(session, track="equities-daily", version_id=version_id,
                               fingerprint=fingerprint, artefacts_root=artefacts_root,
                               actor="<b>ann</b>", spec_name="resmom",
                               details={"note": "<script>alert(1)</script>",
                                        "train": {"epochs": 3}})
    text = make_client(public_reads=True).get(f"/versions/{version_id}").text
    assert_valid_html(text)
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text
    assert "<b>ann</b>" not in text and "by &lt;b&gt;ann&lt;/b&gt;" in text
    assert "{&#34;epochs&#34;: 3}" in text
    assert "No shadow day settled yet" in text and 'id="figure-' not in text


def test_an_unknown_or_invalid_version_is_an_error_page(make_client, register) -> None:
    register("v1-a")
    client = make_client(public_reads=True)
    missing = client.get("/versions/v9-z-20250630-00000000")
    assert missing.status_code == 404 and "unknown version" in missing.text
    invalid = client.get("/versions/NOT A VERSION")
    assert invalid.status_code == 422 and "<!DOCTYPE html>" in invalid.text
    assert "invalid version id" in invalid.text


def test_without_public_reads_the_version_page_asks_for_a_token(make_client, register,
                                                               auth) -> None:
    version_id = register("v1-a")
    client = make_client()
    asked = client.get(f"/versions/{version_id}")
    assert asked.status_code == 401 and 'id="token"' in asked.text and version_id not in \
        asked.text
    shown = client.get(f"/versions/{version_id}", headers=auth("read"))
    assert shown.status_code == 200 and version_id in shown.text
