"""The leaderboard page at ``/``: content, escaping, empty states, the read rule, plotly.js."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine
from sqlmodel import select

from registry import promotion, store
from registry.db import write_session
from registry.models import ApiToken, ShadowScore, utcnow
from tests.api.conftest import API, TRACK, assert_problem
from tests.conftest import imported_by

HOSTILE = '<img src=x onerror="alert(1)">'
START = dt.date(2025, 7, 1)


def settle(engine: Engine, version_id: str, net: np.ndarray, start: dt.date = START) -> None:
    """Settled shadow days for ``version_id``, as the shadow runner writes them."""
    with write_session(engine) as session:
        for i, value in enumerate(net):
            session.add(ShadowScore(version_id=version_id, day=start + dt.timedelta(days=i),
                                    gross=float(value) + 2e-4, turnover=0.4, cost=2e-4,
                                    net=float(value), rank_ic=0.02, n_assets=50))
        session.commit()


def seed_board(engine: Engine, artefacts_root: Path, make_bundle: Callable[..., tuple[str, str]],
               *, spec: str = "resmom", days: int = 200) -> dict[str, str]:
    """A champion, a clearly better and a clearly worse challenger, and a retired former
    champion, each with ``days`` settled days. Returns their ids by role."""
    ids = {}
    for role in ("retired", "champion", "better", "worse"):
        version_id, fingerprint = make_bundle(f"v-{role}", track=TRACK)
        with write_session(engine) as session:
            store.register_version(session, track=TRACK, version_id=version_id,
                                   fingerprint=fingerprint, artefacts_root=artefacts_root,
                                   actor="test", spec_name=spec)
        ids[role] = version_id
    for role in ("retired", "champion"):  # the first champion, then its successor
        with write_session(engine) as session:
            promotion.promote_version(session, version_id=ids[role], actor="test", reason="seed",
                                      gate=None, artefacts_root=artefacts_root, force=True)
    rng = np.random.default_rng(11)
    means = {"retired": 0.0, "champion": 2e-4, "better": 4e-3, "worse": -2e-3}
    for role, mean in means.items():
        settle(engine, ids[role], rng.normal(mean, 0.01, days if role != "retired" else 40))
    return ids


class _Structure(HTMLParser):
    """Well-formedness the browser would not fix for us: every element closed, in order."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.ids: list[str] = []
        self.problems: list[str] = []
        self.doctype = False

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl.lower() == "doctype html"

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [value for name, value in attrs if name == "id" and value]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else ''}>")
        else:
            self.stack.pop()


def assert_valid_html(text: str) -> None:
    parser = _Structure()
    parser.feed(text)
    parser.close()
    assert parser.doctype, "no <!DOCTYPE html>"
    assert not parser.problems and not parser.stack, (parser.problems, parser.stack)
    assert len(parser.ids) == len(set(parser.ids)), "duplicate ids"


def figures(text: str) -> list[dict]:
    return [json.loads(block) for block in re.findall(
        r'<script type="application/json" id="figure-\d+">(.*?)</script>', text, re.S)]


def test_champion_first_then_challengers_with_metrics_verdicts_and_one_chart(
        make_client, engine, artefacts_root, make_bundle) -> None:
    ids = seed_board(engine, artefacts_root, make_bundle)
    response = make_client(public_reads=True).get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "text/html")
    text = response.text
    assert_valid_html(text)
    live = re.findall(r'<tr class="(champion|challenger)" data-version="([^"]+)"', text)
    assert live == [("champion", ids["champion"]), ("challenger", ids["better"]),
                    ("challenger", ids["worse"])]
    better_row = text[text.index(f'data-version="{ids["better"]}"'):]
    assert re.search(r'class="verdict verdict-PASS">PASS<', better_row[:3000])
    assert "the gate's pick" in better_row[:3000]
    worse_row = text[text.index(f'data-version="{ids["worse"]}"'):]
    assert "verdict-FAIL" in worse_row[:3000]
    assert f"<strong>The gate would promote {ids['better']}.</strong>" in text
    assert "Retired versions (1)" in text
    assert f'<tr class="retired" data-version="{ids["retired"]}"' in text
    for header in ("days scored", "net bp/day", "net Sharpe", "max drawdown", "turnover per day",
                   "cost bp/day"):
        assert f">{header}</th>" in text
    champion_row = text[text.index(f'data-version="{ids["champion"]}"'):]
    assert "<td>200</td>" in champion_row[:1500] and "<td>2.00</td>" in champion_row[:1500]
    (figure,) = figures(text)
    names = [trace["name"] for trace in figure["data"]]
    assert names == [f"{ids['champion']} (champion)", ids["better"], ids["worse"]]
    rng = np.random.default_rng(11)  # the same draws as seed_board, in the same order
    expected = {role: rng.normal(mean, 0.01, 200 if role != "retired" else 40) for role, mean in
                {"retired": 0.0, "champion": 2e-4, "better": 4e-3, "worse": -2e-3}.items()}
    for trace, role in zip(figure["data"], ("champion", "better", "worse"), strict=True):
        assert trace["x"][0] == START.isoformat() and len(trace["x"]) == 200
        # in percent, rounded to 1e-4 of a point (the hover shows two decimals)
        np.testing.assert_allclose(trace["y"], 100 * np.cumsum(expected[role]), rtol=0,
                                   atol=5.0001e-5)
    assert '<script src="/static/plotly.min.js?v=' in text
    assert "cdn" not in text.lower() and "https://" not in text


def test_user_data_is_escaped_in_the_table_and_in_the_chart_data(
        make_client, engine, artefacts_root, make_bundle) -> None:
    seed_board(engine, artefacts_root, make_bundle, spec=HOSTILE, days=30)
    client = make_client(public_reads=True)
    text = client.get("/").text
    assert HOSTILE not in text and "<img" not in text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in text
    assert_valid_html(text)
    for figure in figures(text):  # the embedded JSON cannot close its <script>
        assert "</" not in json.dumps(figure)
    hostile = client.get("/", params={"track": "</title><script>alert(1)</script>"})
    assert hostile.status_code == 404 and "<script>alert(1)" not in hostile.text
    assert "&lt;/title&gt;&lt;script&gt;" in hostile.text


def test_empty_state_says_what_to_do(make_client) -> None:
    response = make_client(public_reads=True).get("/")
    assert response.status_code == 200
    assert "No versions yet" in response.text and "<code>zoo --all-active</code>" in response.text
    assert "plotly.min.js" not in response.text  # no chart, no script
    assert_valid_html(response.text)


def test_a_track_without_scores_says_so_and_draws_no_chart(make_client, register) -> None:
    version_id = register("v1-linear")
    text = make_client(public_reads=True).get("/", params={"track": TRACK}).text
    assert "No shadow scores yet on this track" in text and "<code>shadow run</code>" in text
    assert f'data-version="{version_id}"' in text and "INSUFFICIENT DATA" in text
    assert "No champion yet" in text
    assert not figures(text)
    assert_valid_html(text)


def test_one_track_is_selected_by_name_and_an_unknown_one_is_404(
        make_client, register) -> None:
    first, other = register("v1-linear"), register("v1-linear", track="fx-hourly")
    client = make_client(public_reads=True)
    everything = client.get("/").text
    assert first in everything and other in everything
    only = client.get("/?track=fx-hourly").text
    assert other in only and first not in only
    assert 'aria-current="page">fx-hourly</a>' in only
    missing = client.get("/?track=nope")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "text/html")
    assert "There is no track named &#39;nope&#39;" in missing.text


def test_without_public_reads_the_page_asks_for_a_token(make_client, register,
                                                        tokens) -> None:
    version_id = register("v1-linear")
    client = make_client()
    response = client.get("/")
    assert response.status_code == 401 and response.headers["www-authenticate"].startswith(
        "Bearer")
    assert version_id not in response.text
    assert 'action="/sign-in"' in response.text and 'type="password"' in response.text
    assert "server.public_reads: true" in response.text
    assert_valid_html(response.text)
    bearer = client.get("/", headers={"Authorization": f"Bearer {tokens['read']}"})
    assert bearer.status_code == 200 and version_id in bearer.text
    wrong = client.get("/", headers={"Authorization": "Bearer pod_wrong"})
    assert wrong.status_code == 401 and version_id not in wrong.text


def test_signing_in_sets_an_httponly_strict_cookie_and_signing_out_clears_it(
        make_client, register, tokens) -> None:
    version_id = register("v1-linear")
    client = make_client()
    origin = {"Origin": "http://testserver"}
    response = client.post("/sign-in", data={"token": tokens["read"], "track": TRACK},
                           headers=origin, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/?track={TRACK}"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"podium_token={tokens['read']};")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Max-Age=28800" in cookie
    assert tokens["read"] not in response.headers["location"] + response.text
    page = client.get(f"/?track={TRACK}")
    assert page.status_code == 200 and version_id in page.text
    assert "signed in as read-bot" in page.text and tokens["read"] not in page.text
    out = client.post("/sign-out", headers=origin, follow_redirects=False)
    assert out.status_code == 303 and 'podium_token=""' in out.headers["set-cookie"]
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert client.get("/").status_code == 401


def test_a_bad_token_or_a_foreign_origin_does_not_sign_in(make_client, tokens) -> None:
    client = make_client()
    bad = client.post("/sign-in", data={"token": "pod_not-a-token"},
                      headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert bad.status_code == 401 and "set-cookie" not in bad.headers
    assert "not accepted" in bad.text and "pod_not-a-token" not in bad.text
    empty = client.post("/sign-in", data={"token": " "}, follow_redirects=False)
    assert empty.status_code == 400 and "set-cookie" not in empty.headers
    foreign = client.post("/sign-in", data={"token": tokens["read"]},
                          headers={"Origin": "https://evil.example"}, follow_redirects=False)
    assert foreign.status_code == 403 and "set-cookie" not in foreign.headers
    as_json = client.post("/sign-in", json={"token": tokens["read"]}, follow_redirects=False)
    assert as_json.status_code == 400 and "set-cookie" not in as_json.headers


def test_a_revoked_token_in_the_cookie_is_forgotten(make_client, register, tokens,
                                                    engine) -> None:
    register("v1-linear")
    private, public = make_client(), make_client(public_reads=True)
    for client in (private, public):
        client.cookies.set("podium_token", tokens["read"])
        assert client.get("/").status_code == 200
    with write_session(engine) as session:
        row = session.exec(select(ApiToken).where(ApiToken.name == "read-bot")).one()
        row.revoked_at = utcnow()
        session.add(row)
        session.commit()
    refused = private.get("/")
    assert refused.status_code == 401 and "no longer accepted" in refused.text
    assert 'podium_token=""' in refused.headers["set-cookie"]
    opened = public.get("/")  # an open server shows the page and drops the stale cookie
    assert opened.status_code == 200 and 'podium_token=""' in opened.headers["set-cookie"]


def test_the_cookie_never_authorises_the_api(make_client, tokens) -> None:
    client = make_client()
    client.cookies.set("podium_token", tokens["admin"])
    assert_problem(client.get("/api/v1/tracks"), 401, "missing_token")


def test_pages_carry_a_strict_content_security_policy(make_client, engine, artefacts_root,
                                                      make_bundle) -> None:
    seed_board(engine, artefacts_root, make_bundle, days=20)
    response = make_client(public_reads=True).get("/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self';" in policy and "nonce" not in policy  # no inline script at all
    inline = re.findall(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)([^>]*)>",
                        response.text)
    assert inline == []
    assert re.search(r'<script src="/static/charts\.js\?v=\w+"></script>', response.text)
    assert response.headers["cache-control"] == "no-store"


def test_the_page_and_the_leaderboard_are_served_as_stored_bytes_until_they_change(
        make_client, auth, engine, artefacts_root, make_bundle, monkeypatch) -> None:
    from registry.api import html

    ids = seed_board(engine, artefacts_root, make_bundle, days=30)
    renders = []
    real_render = html.render_text
    monkeypatch.setattr("registry.api.routes.page.render_text",
                        lambda *a, **k: renders.append(a) or real_render(*a, **k))
    client = make_client(public_reads=True)
    page = f"/?track={TRACK}"
    packed = client.get(page, headers={"Accept-Encoding": "gzip"})
    plain = client.get(page, headers={"Accept-Encoding": "identity"})
    assert packed.headers["content-encoding"] == "gzip"
    assert "content-encoding" not in plain.headers
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.text == plain.text and len(renders) == 1  # rendered once, served twice
    board_url = f"{API}/tracks/{TRACK}/leaderboard"
    board = client.get(board_url, headers={**auth("read"), "Accept-Encoding": "gzip"})
    assert board.headers["content-encoding"] == "gzip" and len(board.json()["rows"]) == 4
    etag = board.headers["etag"]
    unchanged = client.get(board_url, headers={**auth("read"), "If-None-Match": etag})
    assert unchanged.status_code == 304 and not unchanged.content
    # A refused promotion is audited without changing the evidence: the page shows it at once.
    refused = client.post(f"{API}/versions/{ids['worse']}/promote", headers=auth("promote"),
                          json={"reason": "worth a try"})
    assert refused.status_code == 409
    assert "worth a try" in client.get(page).text and len(renders) == 2
    assert client.get(board_url, headers={**auth("read"), "If-None-Match": etag}
                      ).status_code == 304
    settle(engine, ids["better"], np.full(5, 0.01), start=START + dt.timedelta(days=30))
    moved = client.get(board_url, headers={**auth("read"), "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    rows = {row["version_id"]: row for row in moved.json()["rows"]}
    assert rows[ids["better"]]["metrics"]["days"] == 35
    assert client.get(page).status_code == 200 and len(renders) == 3



def test_a_current_page_is_answered_on_the_event_loop_each_reader_their_own(
        make_client, register, tokens, engine, monkeypatch) -> None:
    from registry.api.routes import page as page_routes

    version_id = register("v1-linear")
    hops: list[str] = []
    real_hop = page_routes.run_in_threadpool

    async def hop(function: Callable[..., object], *args: object, **kwargs: object) -> object:
        hops.append(function.__name__)
        return await real_hop(function, *args, **kwargs)

    monkeypatch.setattr(page_routes, "run_in_threadpool", hop)
    client = make_client(public_reads=True, token_cache_ttl=60.0)
    anonymous = client.get("/")  # rendered in the thread pool
    assert anonymous.status_code == 200 and version_id in anonymous.text
    assert "signed in as" not in anonymous.text
    again = client.get("/")  # stored and current: answered where it was asked
    assert again.content == anonymous.content and again.headers["etag"] == anonymous.headers[
        "etag"]
    assert again.headers["content-security-policy"] == anonymous.headers[
        "content-security-policy"]
    client.cookies.set("podium_token", tokens["read"])
    for _ in range(2):  # its own page, rendered once (the token checked in the thread pool)
        assert "signed in as read-bot" in client.get("/").text
    client.cookies.clear()
    assert "signed in as" not in client.get("/").text
    bearer = client.get("/", headers={"Authorization": f"Bearer {tokens['promote']}"})
    assert bearer.status_code == 200 and "signed in as" not in bearer.text
    assert client.get("/?track=nope").status_code == 404
    # on SQLite only the renders, the unknown token and the 404 took a thread; a PostgreSQL
    # round trip never runs on the event loop
    expected = 4 if engine.dialect.name == "sqlite" else 7
    assert hops == ["reader_page"] * expected

def test_plotly_js_is_served_from_the_package_and_cached_for_long(client) -> None:
    from plotly.offline import get_plotlyjs

    plain = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "identity"})
    assert plain.status_code == 200 and plain.text == get_plotlyjs()
    assert plain.headers["content-type"].startswith("text/javascript")
    assert "max-age=31536000" in plain.headers["cache-control"]
    packed = client.get("/static/plotly.min.js", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["content-encoding"] == "gzip"
    assert int(packed.headers["content-length"]) < len(plain.content) / 2
    assert packed.content == plain.content  # httpx decodes it
    again = client.get("/static/plotly.min.js",
                       headers={"If-None-Match": plain.headers["etag"]})
    assert again.status_code == 304 and not again.content
    charts = client.get("/static/charts.js")
    assert charts.status_code == 200 and "Plotly.newPlot" in charts.text
    assert charts.headers["content-type"].startswith("text/javascript")


def test_page_routes_stay_out_of_the_openapi_schema_and_docs_still_work(client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if not p.startswith("/api/v1/")]
    assert client.get("/docs").status_code == 200


def test_serving_imports_neither_jinja_nor_plotly_nor_pandas_until_asked(tmp_path) -> None:
    loaded, _ = imported_by(
        "from registry.api import create_app\nfrom registry.config import PodiumConfig\n"
        f"create_app(PodiumConfig.model_validate({{'database': {{'url': "
        f"'sqlite:///{tmp_path / 'x.db'}'}}}}))",
        ["jinja2", "plotly", "pandas", "registry.evidence"])
    assert loaded == []


@pytest.mark.parametrize("path", ["/sign-in", "/sign-out"])
def test_sign_in_and_out_are_posts_only(client, path) -> None:
    assert client.get(path).status_code == 405
