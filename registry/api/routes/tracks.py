"""Tracks: the list, the champion (the consumers' hot path), the audit log, rollback."""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from sqlalchemy import Engine, bindparam, select
from starlette.concurrency import run_in_threadpool

from registry import judged_tracks, store
from registry.api.bearer import BearerToken, bearer_token, caller
from registry.api.deps import (
    MAX_SQL_INT,
    ConfigDep,
    EngineDep,
    PromoterDep,
    ReaderDep,
    RequestIdDep,
    SessionDep,
    TrackPath,
)
from registry.api.encoded import EncodedBody, encoded_response
from registry.api.idempotency import IdempotencyKey, request_fingerprint, run_idempotent
from registry.api.problems import problem_responses
from registry.api.schemas import (
    AuditPage,
    ChampionPublic,
    Leaderboard,
    RollbackRequest,
    TrackList,
    TrackPublic,
    TransitionResponse,
)
from registry.api.transitions import transition_body
from registry.auth import require_scope
from registry.config import PodiumConfig
from registry.db import driver_rows, is_sqlite, read_session, write_session
from registry.errors import NotFound
from registry.ids import SLUG_JSON_PATTERN, canonical_json, validate_slug
from registry.lifecycle import State
from registry.models import ModelVersion, Track
from registry.storage import artefact_store

router = APIRouter(prefix="/tracks", tags=["tracks"])
LEADERBOARD_BODY = "leaderboard-body"  # what judged_tracks stores the serialised answer as
# TrackPath and ReaderDep, minus their thread hops (see ``champion``)
ChampionTrack = Annotated[str, Path(examples=["equities-daily"],
                                    json_schema_extra={"pattern": SLUG_JSON_PATTERN})]


@router.get("", response_model=TrackList, responses=problem_responses(401, 503),
            summary="Every track and its champion")
def list_tracks(session: SessionDep, _: ReaderDep) -> TrackList:
    names = store.list_tracks(session)
    champions = {v.track: v.version_id for v in store.list_versions(
        session, state=State.CHAMPION.value, limit=store.MAX_PAGE)}
    return TrackList(items=[TrackPublic(name=n, champion=champions.get(n)) for n in names])


async def champion(request: Request, track: ChampionTrack, token: BearerToken,
                   if_none_match: Annotated[str | None, Header()] = None) -> Response:
    # The hot path runs on the event loop: no thread hop (each costs more than the lookup).
    # The token cache answers a known token here; the database is asked in the thread pool
    # only on a miss, and for the champion's row only on PostgreSQL (a round trip must never
    # block the loop; a SQLite read is a few µs).
    engine = request.app.state.engine
    require_scope(await caller(request, token), "read")
    validate_slug(track, what="track")
    if is_sqlite(engine):
        body, etag = champion_answer(engine, track)
    else:
        body, etag = await run_in_threadpool(champion_answer, engine, track)
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


async def leaderboard(request: Request, track: ChampionTrack, token: BearerToken) -> Response:
    # Readers of a stored leaderboard are answered on the event loop, as the champion is: the
    # body was serialised and compressed once per change of the track's evidence. Computing it
    # after a change, and any PostgreSQL round trip, happen in the thread pool.
    engine, config = request.app.state.engine, request.app.state.config
    require_scope(await caller(request, token), "read")
    validate_slug(track, what="track")
    body = stored_leaderboard_body(engine, config, track) if is_sqlite(engine) else None
    if body is None:
        body = await run_in_threadpool(leaderboard_body, engine, config, track)
    return encoded_response(request, body, media_type="application/json",
                            headers={"Cache-Control": "no-cache"})


def stored_leaderboard_body(engine: Engine, config: PodiumConfig,
                            track: str) -> EncodedBody | None:
    """The serialised leaderboard if still current, else ``None``: no session, no computing."""
    key = judged_tracks.view_key(engine, track=track, config=config)
    return judged_tracks.stored_if_fresh(engine, track=track, kind=LEADERBOARD_BODY, key=key)


def leaderboard_body(engine: Engine, config: PodiumConfig, track: str) -> EncodedBody:
    """The stored leaderboard, serialised; computed first if the track's evidence changed."""
    from registry.evidence import read_leaderboard, stored_view  # pandas, scipy: on first use

    with read_session(engine) as session:
        return stored_view(session, track=track, config=config, kind=LEADERBOARD_BODY,
                           render=lambda: EncodedBody.of(orjson.dumps(read_leaderboard(
                               session, track=track, config=config))))


class HotPathRoute(APIRoute):
    """The readers' hot routes: OpenAPI documents their parameters as declared, but they are
    read here directly, since FastAPI's general dependency solver costs more than the lookup."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        conditional = "if_none_match" in inspect.signature(endpoint).parameters

        async def handler(request: Request) -> Response:
            extra = {"if_none_match": request.headers.get("if-none-match")} if conditional else {}
            return await endpoint(request, track=request.path_params["track"],
                                  token=bearer_token(request), **extra)

        return handler


router.add_api_route(
    "/{track:path}/champion", champion, methods=["GET"], route_class_override=HotPathRoute,
    response_model=ChampionPublic, summary="The track's champion: what consumers load",
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"},
               **problem_responses(401, 404, 422, 503)})
router.add_api_route(
    "/{track:path}/leaderboard", leaderboard, methods=["GET"], route_class_override=HotPathRoute,
    response_model=Leaderboard,
    summary="Champion and challengers with net metrics, curves and the gate's verdicts",
    responses={304: {"description": "unchanged since the ETag sent in If-None-Match"},
               **problem_responses(401, 404, 422, 503)})


_CHAMPION_FIELDS = ("version_id", "track", "bundle_path", "bundle_digest", "champion_since",
                    "kind")
_CHAMPION_QUERY = select(*(getattr(ModelVersion, f) for f in _CHAMPION_FIELDS)).where(
    *store.champion_criteria(bindparam("track")))


def champion_answer(engine: Engine, track: str) -> tuple[bytes, str]:
    """The champion's JSON and ETag: one indexed SELECT on a pooled DBAPI connection (an ORM
    session costs tens of times the query itself), rendered once per distinct row."""
    rows = driver_rows(engine, _CHAMPION_QUERY, track=track)
    if not rows:  # rare: the store says which 404 (unknown track, or no champion yet)
        with read_session(engine) as session:
            version = store.resolve_champion(session, track)
            rows = [tuple(getattr(version, f) for f in _CHAMPION_FIELDS)]
    row = rows[0]
    external = ""
    if row[-1] == "external":  # its provenance too (a JSON column: read through the ORM)
        with read_session(engine) as session:
            version = store.get_version(session, row[0])
            external = canonical_json({"provenance": version.provenance,
                                       "description": version.details.get("description")})
    return _render(tuple(row), external)


@functools.lru_cache(maxsize=256)
def _render(row: tuple, external: str = "") -> tuple[bytes, str]:
    body = ChampionPublic.model_validate({**dict(zip(_CHAMPION_FIELDS, row, strict=True)),
                                          **(json.loads(external) if external else {})})
    etag = '"' + hashlib.sha256(
        f"{body.version_id}|{body.bundle_digest}|{body.champion_since}|{external}".encode()
    ).hexdigest()[:32] + '"'
    # a built-in champion's answer stays as lean as ever: the external fields only for those
    lean = {"kind", "provenance", "description"} if body.kind != "external" else None
    return body.model_dump_json(exclude=lean).encode(), etag


@router.get("/{track:path}/audit", response_model=AuditPage,
            responses=problem_responses(401, 404, 422, 503),
            summary="The track's audit log, newest first")
def audit(track: TrackPath, session: SessionDep, _: ReaderDep, request: Request,
          limit: Annotated[int, Query(ge=1, le=500)] = 100,
          offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0) -> AuditPage:
    if session.get(Track, track) is None:
        raise NotFound(f"unknown track {track!r}", code="unknown_track")
    rows = store.list_audit(session, track=track, limit=limit + 1, offset=offset)
    more = len(rows) > limit
    next_url = (str(request.url.include_query_params(limit=limit, offset=offset + limit))
                if more else None)
    return AuditPage.model_validate({"items": rows[:limit], "limit": limit, "offset": offset,
                                     "next": next_url})


@router.post("/{track:path}/rollback", response_model=TransitionResponse,
             responses=problem_responses(400, 401, 403, 404, 409, 413, 422, 503, why={
                 409: "nothing to roll back to, expected_champion no longer holds, or the "
                      "same Idempotency-Key is still running"}),
             summary="Retire the champion and restore the one it replaced")
def rollback(track: TrackPath, body: RollbackRequest, principal: PromoterDep, engine: EngineDep,
             config: ConfigDep, request_id: RequestIdDep, request: Request,
             idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def action() -> dict:
        with write_session(engine) as session:
            transition = store.rollback_track(
                session, track=track, actor=principal.name, reason=body.reason,
                artefacts_root=artefact_store(config), request_id=request_id,
                expected_champion=body.expected_champion)
        request.app.state.notify_events()
        return transition_body(transition, gate=None)

    fingerprint = request_fingerprint("POST", request.url.path, body.model_dump())
    return run_idempotent(engine, key=idempotency_key, principal=principal,
                          fingerprint=fingerprint, action=action, request_id=request_id)
