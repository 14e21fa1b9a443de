"""Versions: list and read; promote (through the gate) and retire."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from registry import promotion, store
from registry.api.deps import (
    MAX_SQL_INT,
    ConfigDep,
    EngineDep,
    PromoterDep,
    ReaderDep,
    RequestIdDep,
    SessionDep,
    VersionIdPath,
)
from registry.api.idempotency import IdempotencyKey, request_fingerprint, run_idempotent
from registry.api.problems import problem_responses
from registry.api.schemas import (
    ModelVersionPublic,
    PromoteRequest,
    ReasonRequest,
    TransitionResponse,
    VersionPage,
)
from registry.api.transitions import transition_body
from registry.auth import require_scope
from registry.db import write_session
from registry.ids import SLUG_JSON_PATTERN
from registry.lifecycle import State

router = APIRouter(prefix="/versions", tags=["versions"])
_READ = problem_responses(401, 422, 503)
_ONE = problem_responses(401, 404, 422, 503)
_PROMOTE = problem_responses(
    400, 401, 403, 404, 409, 413, 422, 503,
    why={409: "refused by the gate (report in `gate`), not a challenger, expected_champion no "
              "longer holds, or the same Idempotency-Key is still running",
         422: "invalid input, an Idempotency-Key reused for another request, or a bundle that "
              "fails its integrity check",
         503: "the database is unreachable or busy, or the gate is unavailable"})
_RETIRE = problem_responses(
    400, 401, 403, 404, 409, 413, 422, 503,
    why={409: "not a challenger, or the same Idempotency-Key is still running"})


@router.get("", response_model=VersionPage, responses=_READ,
            summary="Versions, newest first, paginated")
def list_versions(session: SessionDep, _: ReaderDep, request: Request,
                  track: Annotated[str | None, Query(
                      json_schema_extra={"pattern": SLUG_JSON_PATTERN})] = None,
                  state: Annotated[str | None, Query(
                      json_schema_extra={"enum": [s.value for s in State]})] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  offset: Annotated[int, Query(ge=0, le=MAX_SQL_INT)] = 0) -> VersionPage:
    rows = store.list_versions(session, track=track, state=state, limit=limit + 1,
                               offset=offset)
    more = len(rows) > limit
    next_url = (str(request.url.include_query_params(limit=limit, offset=offset + limit))
                if more else None)
    return VersionPage.model_validate({"items": rows[:limit], "limit": limit, "offset": offset,
                                       "next": next_url})


@router.post("/{version_id:path}/promote", response_model=TransitionResponse, responses=_PROMOTE,
             summary="Promote a challenger to champion (through the gate unless forced)")
def promote(version_id: VersionIdPath, body: PromoteRequest, principal: PromoterDep,
            engine: EngineDep, config: ConfigDep, request_id: RequestIdDep, request: Request,
            idempotency_key: IdempotencyKey = None) -> JSONResponse:
    if body.force:
        require_scope(principal, "admin")

    def action() -> dict[str, Any]:
        promoted = promotion.promote(
            engine, version_id=version_id, actor=principal.name, reason=body.reason,
            config=config, force=body.force, expected_champion=body.expected_champion,
            request_id=request_id, announce=request.app.state.notify_events)
        gate = promoted.gate
        return transition_body(promoted.transition, gate=gate.as_record() if gate else None)

    fingerprint = request_fingerprint("POST", request.url.path, body.model_dump())
    return run_idempotent(engine, key=idempotency_key, principal=principal,
                          fingerprint=fingerprint, action=action, request_id=request_id)


@router.post("/{version_id:path}/retire", response_model=TransitionResponse, responses=_RETIRE,
             summary="Retire a challenger")
def retire(version_id: VersionIdPath, body: ReasonRequest, principal: PromoterDep,
           engine: EngineDep, request_id: RequestIdDep, request: Request,
           idempotency_key: IdempotencyKey = None) -> JSONResponse:
    def action() -> dict[str, Any]:
        with write_session(engine) as session:
            transition = store.retire_version(session, version_id=version_id,
                                              actor=principal.name, reason=body.reason,
                                              request_id=request_id)
        request.app.state.notify_events()
        return transition_body(transition, gate=None)

    fingerprint = request_fingerprint("POST", request.url.path, body.model_dump())
    return run_idempotent(engine, key=idempotency_key, principal=principal,
                          fingerprint=fingerprint, action=action, request_id=request_id)


# Last: "{version_id:path}" would also match ".../promote" and answer a wrong Allow on a 405.
@router.get("/{version_id:path}", response_model=ModelVersionPublic, responses=_ONE,
            summary="One version")
def get_version(version_id: VersionIdPath, session: SessionDep, _: ReaderDep
                ) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(store.get_version(session, version_id))
