"""The leaderboard's "as of", self-refresh, crowning mark and audit history; the track list."""

from __future__ import annotations

import datetime as dt
import re

import numpy as np

from registry import promotion
from registry.db import write_session
from tests.api.conftest import TRACK
from tests.api.test_page import START, assert_valid_html, figures, seed_board, settle


def test_the_leaderboard_says_as_of_when_refreshes_and_marks_the_crowning(
        make_client, engine, artefacts_root, make_bundle) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    text = make_client(public_reads=True).get("/").text
    assert_valid_html(text)
    assert '<meta http-equiv="refresh" content="60">' in text
    last_day = (START + dt.timedelta(days=199)).isoformat()
    assert f'<time class="last-settled">{last_day}</time>' in text
    assert re.search(r'<time class="computed">\d{4}-\d\d-\d\d \d\d:\d\d:\d\d</time>', text)
    (figure,) = figures(text)
    # seed_board crowns its champion before any day is settled: no first day, no mark
    assert not figure["layout"].get("shapes")
    history = text[text.index('class="audit-list"'):]
    assert "Audit history (6 latest)" in history
    assert f'<a href="/versions/{ids["champion"]}">{ids["champion"]}</a>' in history
    assert "promote (forced)" in history


def test_a_champion_crowned_after_scored_days_is_marked_on_its_first_day(
        make_client, engine, artefacts_root, make_bundle) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    with write_session(engine) as session:  # crown the better one after its 200 days
        promotion.promote_version(session, version_id=ids["better"], actor="test",
                                  reason="won", gate=None, artefacts_root=artefacts_root,
                                  force=True)
    settle(engine, ids["better"], np.full(5, 1e-3), start=START + dt.timedelta(days=200))
    (figure,) = figures(make_client(public_reads=True).get("/").text)
    (shape,) = figure["layout"]["shapes"]
    crowned = (START + dt.timedelta(days=200)).isoformat()
    assert shape["x0"] == shape["x1"] == crowned
    assert [a["text"] for a in figure["layout"]["annotations"]] == ["champion crowned"]


def test_the_track_list_links_each_track_and_its_champion(
        make_client, engine, artefacts_root, make_bundle, register) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    register("v1-x", track="rates-daily")
    response = make_client(public_reads=True).get("/tracks")
    assert response.status_code == 200
    text = response.text
    assert_valid_html(text)
    rows = re.findall(r'<tr class="track-row" data-track="([^"]+)">', text)
    assert rows == [TRACK, "rates-daily"]
    equities = text[text.index(f'data-track="{TRACK}"'):text.index('data-track="rates-daily"')]
    assert f'<a href="/?track={TRACK}">{TRACK}</a>' in equities
    assert f'<a href="/versions/{ids["champion"]}">' in equities
    assert "<td>2</td><td>1</td>" in equities  # two challengers, one retired
    rates = text[text.index('data-track="rates-daily"'):]
    assert "none yet" in rates and "<td>1</td><td>0</td>" in rates


def test_the_track_list_is_private_without_public_reads(make_client, register, auth) -> None:
    register("v1-a")
    client = make_client()
    assert client.get("/tracks").status_code == 401
    assert client.get("/tracks", headers=auth("read")).status_code == 200
