"""The leaderboard page at ``GET /``: server-rendered HTML and one plotly chart per track.

The page shows what ``GET /api/v1/tracks/{track}/leaderboard`` shows, so it obeys the same read
rule. With ``server.public_reads`` on it is open. Otherwise the caller needs a token (any scope,
since read ⊂ promote ⊂ admin): an ``Authorization: Bearer`` header, as on the API, or the
cookie that the page's sign-in form sets (``registry.api.routes.signin``).

The page is rendered once per change of what it shows (each track's evidence, its latest audit
entry, the list of tracks, who reads it) and served as stored, pre-compressed bytes
(``registry.api.encoded``): a read costs one small query, never a render. While the stored page
is current and the caller is known without the database (no token on an open server, or a
token the cache holds), it is answered on the event loop, as the leaderboard is; signing in,
rendering and the error pages happen in the thread pool.

Plotly and the leaderboard's maths (pandas, scipy) are imported on first use, so
``registry serve`` starts and idles without them; plotly.js itself comes from
``registry.api.routes.static``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import Engine, func, select
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from registry import judged_tracks, store
from registry.api.bearer import cached_principal
from registry.api.encoded import EncodedBody, encoded_response
from registry.api.html import PAGE_HEADERS, render_html, render_text
from registry.api.routes.signin import forget_cookie, page_credential, page_reader, signin_page
from registry.api.routes.static import charts_src, plotly_src
from registry.auth import ANONYMOUS, Principal, require_scope
from registry.config import PodiumConfig
from registry.db import driver_rows, is_sqlite, read_session
from registry.errors import NotFound, PodiumError, Unauthorized
from registry.models import AuditEntry, Track, utcnow

router = APIRouter(include_in_schema=False)
CHAMPION_COLOUR = "#0969da"  # as the champion's row in the table
REFRESH_SECONDS = 60  # the page reloads itself this often (a meta refresh: no script needed)
AUDIT_ROWS = 20  # the latest audit entries shown under each track
# Every track, its evidence and its newest audit entry: what the page's key is read from
_PAGE_KEY = select(Track.name, Track.created_at, Track.evidence_tag, select(
    func.max(AuditEntry.id)).where(AuditEntry.track == Track.name).scalar_subquery()
                   ).order_by(Track.name)


@router.get("/", response_class=HTMLResponse)
async def leaderboard_page(request: Request) -> Response:
    """Each track's (or one track's, ``?track=``) champion, challengers, gate verdicts and
    chart. The query is read here, not declared: FastAPI's parameter solver costs more than
    answering a stored page."""
    track = request.query_params.get("track") or None
    stored = (_stored_page(request, track=track) if is_sqlite(request.app.state.engine)
              else None)
    if stored is not None:
        return stored
    return await run_in_threadpool(
        reader_page, request, track=track, render=lambda principal, signed_in:
        _render_leaderboard(request, track=track, principal=principal, signed_in=signed_in))


def reader_page(request: Request, *, track: str | None,
                render: Callable[[Principal, bool], Response]) -> Response:
    """``render(principal, signed_in)`` for a caller who may read; else the sign-in form.

    A domain error while rendering becomes the error page with its status."""
    token, from_cookie = page_credential(request)
    try:
        principal = page_reader(request, token)
    except Unauthorized:
        if token is not None and from_cookie and request.app.state.config.server.public_reads:
            principal = ANONYMOUS  # a stale cookie on an open server: forget it, show the page
        else:
            message = ("That token is no longer accepted (unknown or revoked): sign in again."
                       if token is not None else None)
            response = signin_page(request, status=401, message=message, track=track)
            if from_cookie:
                forget_cookie(response, request)
            return response
    try:
        response = render(principal, from_cookie and principal is not ANONYMOUS)
    except PodiumError as error:
        response = render_html(request, "error.html", status=error.status, title=error.title,
                               detail=error.detail)
    if from_cookie and principal is ANONYMOUS:
        forget_cookie(response, request)
    return response


def _stored_page(request: Request, *, track: str | None) -> Response | None:
    """The stored page if it is current and the caller is known without the database (the
    token cache, or no token on an open server); else ``None``: never blocks, never renders."""
    token, from_cookie = page_credential(request)
    engine = request.app.state.engine
    try:
        principal = cached_principal(request, token)
        if principal is None:
            return None
        require_scope(principal, "read")
        key = _page_key(engine, request.app.state.config, track)
    except PodiumError:  # refused, or the database unready: the thread pool answers, in HTML
        return None
    body = None if key is None else judged_tracks.stored_if_fresh(
        engine, track=track or "", kind=_page_kind(principal, from_cookie), key=key)
    return None if body is None else encoded_response(
        request, body, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)


def _render_leaderboard(request: Request, *, track: str | None, principal: Principal,
                        signed_in: bool) -> Response:
    config = request.app.state.config
    with read_session(request.app.state.engine) as session:
        key = _page_key(session, config, track)
        if key is None:
            raise NotFound(f"There is no track named {track!r}.", code="unknown_track")
        tracks = list(key[0])
        shown = [track] if track else tracks
        body = judged_tracks.stored(
            session, track=track or "", kind=_page_kind(principal, signed_in), key=key,
            compute=lambda: EncodedBody.of(render_text(
                "leaderboard.html", tracks=tracks, selected=track,
                boards=[_board(session, name, config) for name in shown], principal=principal,
                signed_in=signed_in, plotly_src=plotly_src(), charts_src=charts_src(),
                computed_at=f"{utcnow():%Y-%m-%d %H:%M:%S}",
                refresh_seconds=REFRESH_SECONDS).encode()))
    return encoded_response(request, body, media_type="text/html; charset=utf-8",
                            headers=PAGE_HEADERS)


def _page_key(source: Session | Engine, config: PodiumConfig, track: str | None
              ) -> tuple | None:
    """What the page of ``track`` (or of every track) shows depends on, read in one query
    (``None``: no such track): the list of tracks and, for each shown, its evidence, its gate's
    settings and its newest audit entry (a refused promotion is audited without changing the
    evidence; the log only grows, so a new entry changes the newest id)."""
    rows = driver_rows(source, _PAGE_KEY)
    tracks = tuple(row[0] for row in rows)
    if track is not None and track not in tracks:
        return None
    return tracks, tuple((str(created), tag, audit, config.gate_for(name).model_dump_json())
                         for name, created, tag, audit in rows if track in (None, name))


def _page_kind(principal: Principal, signed_in: bool) -> str:
    """Who reads the page, as its stored copies are told apart: its sign-in box shows them."""
    return f"page/{principal.name}/{signed_in and principal is not ANONYMOUS}"


def _board(session: Session, name: str, config: PodiumConfig) -> dict[str, Any]:
    """One track's part of the page: its stored view, and its latest audit entries."""
    from registry.evidence import champion_first_day, read_leaderboard, stored_view

    crowned = champion_first_day(session, store.find_champion(session, name))
    try:  # the view and its chart are built once per change of the track's evidence
        view = stored_view(
            session, track=name, config=config, kind="page",
            render=lambda: _board_view({
                **read_leaderboard(session, track=name, config=config),
                "crowned": crowned.isoformat() if crowned else None}))
    except NotFound:  # a track whose versions are all gone: nothing to show
        view = _board_view({"track": name, "rows": [], "curves": {}, "winner": None,
                            "winner_reason": None, "crowned": None})
    return {**view, "audit": store.list_audit(session, track=name, limit=AUDIT_ROWS)}


def _board_view(board: dict[str, Any]) -> dict[str, Any]:
    """A track's leaderboard split for the page: who is live, who is retired, the chart."""
    live = [row for row in board["rows"] if row["state"] != "retired"]
    settled = [curve["days"][-1] for curve in board["curves"].values() if curve["days"]]
    from jinja2.utils import htmlsafe_json_dumps  # with the page, not at start-up

    figure = _figure(live, board["curves"], crowned=board.get("crowned"))
    return {**board, "live": live,
            "retired": [row for row in board["rows"] if row["state"] == "retired"],
            "scored": any(row["metrics"]["days"] for row in board["rows"]),
            "last_settled": max(settled) if settled else None,
            "figure": figure,  # serialised once here, not on every request:
            "figure_json": htmlsafe_json_dumps(figure) if figure else None}


def _figure(rows: list[dict[str, Any]], curves: dict[str, Any], *,
            crowned: str | None = None) -> dict[str, Any] | None:
    """Cumulative net return (%) of the champion and each challenger, one trace each, and a
    line on the champion's first day as champion.

    Plotly's figure JSON written directly (plotly.js draws it): building it through
    ``plotly.graph_objects`` validates every point in Python, seconds for a track with dozens
    of versions, all of it holding the GIL the event loop needs."""
    drawn = [row for row in rows if curves.get(row["version_id"], {}).get("days")]
    if not drawn:
        return None
    data = []
    for row in drawn:
        curve = curves[row["version_id"]]
        champion = row["state"] == "champion"
        data.append({
            "hovertemplate": "%{x}<br>%{y:.2f} %",
            "line": {"color": CHAMPION_COLOUR, "width": 3} if champion else {"width": 1.6},
            "mode": "lines", "name": row["version_id"] + (" (champion)" if champion else ""),
            # to 1e-4 of a percentage point: the hover shows two decimals
            "x": curve["days"], "y": [round(100.0 * value, 4) for value in curve["cumulative_net"]],
            "type": "scatter"})
    layout: dict[str, Any] = {
        "template": _template(), "height": 420, "margin": {"l": 60, "r": 20, "t": 20, "b": 40},
        "xaxis": {"title": {"text": "day"}},
        "yaxis": {"title": {"text": "cumulative net return (%)"}}, "hovermode": "closest",
        "legend": {"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0}}
    if crowned is not None:
        layout["shapes"] = [{"line": {"color": CHAMPION_COLOUR, "dash": "dot", "width": 1},
                             "type": "line", "x0": crowned, "x1": crowned, "xref": "x",
                             "y0": 0, "y1": 1, "yref": "y domain"}]
        layout["annotations"] = [{"font": {"color": CHAMPION_COLOUR}, "name": "crowned",
                                  "showarrow": False, "text": "champion crowned", "x": crowned,
                                  "y": 1, "yanchor": "bottom", "yref": "paper"}]
    return {"data": data, "layout": layout}


@functools.cache
def _template() -> dict[str, Any]:
    """Plotly's ``plotly_white`` template as JSON (imported when a chart is first drawn)."""
    import plotly.graph_objects as go

    return json.loads(go.Figure(layout={"template": "plotly_white"}).to_json())["layout"][
        "template"]
