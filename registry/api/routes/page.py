"""The leaderboard page at ``GET /``: server-rendered HTML and one plotly chart per track.

The page shows what ``GET /api/v1/tracks/{track}/leaderboard`` shows, so it obeys the same read
rule. With ``server.public_reads`` on it is open. Otherwise the caller needs a token (any scope,
since read ⊂ promote ⊂ admin): an ``Authorization: Bearer`` header, as on the API, or the
cookie that the page's sign-in form sets (``registry.api.routes.signin``).

Plotly and the leaderboard's maths (pandas, scipy) are imported on first use, so
``registry serve`` starts and idles without them; plotly.js itself comes from
``registry.api.routes.static``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from registry import store
from registry.api.html import render_html
from registry.api.routes.signin import forget_cookie, page_credential, page_reader, signin_page
from registry.api.routes.static import plotly_src
from registry.auth import ANONYMOUS, Principal
from registry.db import read_session
from registry.errors import NotFound, PodiumError, Unauthorized
from registry.models import utcnow

router = APIRouter(include_in_schema=False)
CHAMPION_COLOUR = "#0969da"  # as the champion's row in the table
REFRESH_SECONDS = 60  # the page reloads itself this often (a meta refresh: no script needed)
AUDIT_ROWS = 20  # the latest audit entries shown under each track


@router.get("/", response_class=HTMLResponse)
def leaderboard_page(request: Request, track: str | None = None) -> Response:
    """Each track's (or one track's) champion, challengers, gate verdicts and chart."""
    return reader_page(request, track=track, render=lambda principal, signed_in:
                       _render_leaderboard(request, track=track or None, principal=principal,
                                           signed_in=signed_in))


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


def _render_leaderboard(request: Request, *, track: str | None, principal: Principal,
                        signed_in: bool) -> Response:
    config = request.app.state.config
    with read_session(request.app.state.engine) as session:
        tracks = store.list_tracks(session)
        if track is not None and track not in tracks:
            raise NotFound(f"There is no track named {track!r}.", code="unknown_track")
        if tracks:
            from registry.evidence import champion_first_day, read_leaderboard, stored_view
        boards = []
        for name in [track] if track else tracks:
            crowned = champion_first_day(session, store.find_champion(session, name))
            try:  # the view and its chart are built once per change of the track's evidence
                view = stored_view(
                    session, track=name, config=config, kind="page",
                    render=lambda name=name, crowned=crowned: _board_view({
                        **read_leaderboard(session, track=name, config=config),
                        "crowned": crowned.isoformat() if crowned else None}))
            except NotFound:  # a track whose versions are all gone: nothing to show
                view = _board_view({"track": name, "rows": [], "curves": {}, "winner": None,
                                    "winner_reason": None, "crowned": None})
            # Refused promotions are audited without changing the evidence: read every time.
            boards.append({**view, "audit": store.list_audit(session, track=name,
                                                             limit=AUDIT_ROWS)})
    return render_html(request, "leaderboard.html", status=200, tracks=tracks, selected=track,
                       boards=boards, principal=principal,
                       signed_in=signed_in, plotly_src=plotly_src(),
                       computed_at=f"{utcnow():%Y-%m-%d %H:%M:%S}",
                       refresh_seconds=REFRESH_SECONDS)


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
    line on the champion's first day as champion."""
    drawn = [row for row in rows if curves.get(row["version_id"], {}).get("days")]
    if not drawn:
        return None
    import plotly.graph_objects as go  # only when a chart is drawn

    figure = go.Figure()
    for row in drawn:
        curve = curves[row["version_id"]]
        champion = row["state"] == "champion"
        figure.add_trace(go.Scatter(
            x=curve["days"], y=[100.0 * value for value in curve["cumulative_net"]],
            mode="lines", name=row["version_id"] + (" (champion)" if champion else ""),
            line={"width": 3, "color": CHAMPION_COLOUR} if champion else {"width": 1.6},
            hovertemplate="%{x}<br>%{y:.2f} %"))
    figure.update_layout(
        template="plotly_white", height=420, margin={"l": 60, "r": 20, "t": 20, "b": 40},
        xaxis_title="day", yaxis_title="cumulative net return (%)", hovermode="closest",
        legend={"orientation": "h", "yanchor": "top", "y": -0.15, "x": 0})
    if crowned is not None:
        figure.add_vline(x=crowned, line={"color": CHAMPION_COLOUR, "width": 1, "dash": "dot"})
        figure.add_annotation(x=crowned, y=1, yref="paper", yanchor="bottom", showarrow=False,
                              text="champion crowned", font={"color": CHAMPION_COLOUR},
                              name="crowned")
    return json.loads(figure.to_json())
