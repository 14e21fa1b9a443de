"""The page listing the tracks at ``GET /tracks``: each track's champion, how many challengers
and retired versions it has, and its last settled shadow day, linked to its leaderboard."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse
from sqlalchemy import func
from sqlmodel import Session, col, select

from registry import store
from registry.api.html import render_html
from registry.api.routes.page import reader_page
from registry.db import read_session
from registry.models import ModelVersion, ShadowScore

router = APIRouter(include_in_schema=False)


@router.get("/tracks", response_class=HTMLResponse)
def track_list_page(request: Request) -> Response:
    """Every track with its champion and the size of its field."""
    return reader_page(request, track=None, render=lambda principal, signed_in:
                       _render(request))


def _render(request: Request) -> Response:
    with read_session(request.app.state.engine) as session:
        tracks = [_summary(session, name) for name in store.list_tracks(session)]
    return render_html(request, "tracks.html", status=200, tracks=tracks)


def _summary(session: Session, track: str) -> dict[str, Any]:
    counts = dict(session.exec(
        select(ModelVersion.state, func.count()).where(ModelVersion.track == track)
        .group_by(ModelVersion.state)).all())
    last_settled = session.exec(
        select(func.max(ShadowScore.day))
        .join(ModelVersion, col(ModelVersion.version_id) == col(ShadowScore.version_id))
        .where(ModelVersion.track == track)).one()
    champion = store.find_champion(session, track)
    return {"name": track, "champion": champion.version_id if champion else None,
            "challengers": counts.get("challenger", 0), "retired": counts.get("retired", 0),
            "last_settled": last_settled.isoformat() if last_settled else None}
