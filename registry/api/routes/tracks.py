"""Tracks: the list, the champion (the consumers' hot path), the audit log, rollback."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from registry import store
from registry.api.deps import (
    ConfigDep,
    EngineDep,
    PromoterDep,
    ReaderDep,
    RequestIdDep,
    SessionDep,
    TrackPath,
)
from registry.api.idempotency import request_fingerprint, run_idempotent
from registry.api.schemas import (
    AuditPage,
    ChampionPublic,
    RollbackRequest,
    TrackList,
    TrackPublic,
    TransitionResponse,
)
from registry.api.transitions import transition_body
from registry.db import write_session
from registry.errors import NotFound
from registry.lifecycle import State
from registry.models import Track

router = APIRouter(prefix="/tracks", tags=["tracks"])
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


@router.get("", response_model=TrackList, summary="Every track and its champion")
def list_tracks(session: SessionDep, _: ReaderDep) -> TrackList:
    names = store.list_tracks(session)
    champions = {v.track: v.version_id for v in store.list_versions(
        session, state=State.CHAMPION.value, limit=store.MAX_PAGE)}
    return TrackList(items=[TrackPublic(name=n, champion=champions.get(n)) for n in names])


@router.get("/{track:path}/champion", response_model=ChampionPublic,
            summary="The track's champion: what consumers load",
            responses={304: {"description": "unchanged since the ETag sent in If-None-Match"}})
def champion(track: TrackPath, session: SessionDep, _: ReaderDep,
             if_none_match: Annotated[str | None, Header()] = None) -> Response:
    version = store.resolve_champion(session, track)
    body = ChampionPublic.model_validate(version)
    etag = '"' + hashlib.sha256(
        f"{body.version_id}|{body.bundle_digest}|{body.champion_since}".encode()
    ).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


@router.get("/{track:path}/audit", response_model=AuditPage,
            summary="The track's audit log, newest first")
def audit(track: TrackPath, session: SessionDep, _: ReaderDep, request: Request,
          limit: Annotated[int, Query(ge=1, le=500)] = 100,
          offset: Annotated[int, Query(ge=0)] = 0) -> AuditPage:
    if session.get(Track, track) is None:
        raise NotFound(f"unknown track {track!r}", code="unknown_track")
    rows = store.list_audit(session, track=track, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    next_url = (str(request.url.include_query_params(limit=limit, offset=offset + limit))
                if more else None)
    return AuditPage.model_validate({"items": rows[:limit], "limit": limit, "offset": offset,
                                     "next": next_url})


@router.post("/{track:path}/rollback", response_model=TransitionResponse,
             summary="Retire the champion and restore the one it replaced")
def rollback(track: TrackPath, body: RollbackRequest, principal: PromoterDep, engine: EngineDep,
             config: ConfigDep, request_id: RequestIdDep, request: Request,
             idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def action() -> dict:
        with write_session(engine) as session:
            transition = store.rollback_track(
                session, track=track, actor=principal.name, reason=body.reason,
                artefacts_root=config.artefacts_root, request_id=request_id,
                expected_champion=body.expected_champion)
        request.app.state.notify_events()
        return transition_body(transition, gate=None)

    fingerprint = request_fingerprint("POST", request.url.path, body.model_dump())
    return run_idempotent(engine, key=idempotency_key, principal=principal,
                          fingerprint=fingerprint, action=action)
