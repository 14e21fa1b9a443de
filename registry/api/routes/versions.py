"""Versions: list and read; promote (through the gate) and retire."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from sqlmodel import Session

from registry import bundle_archive, promotion, store
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
    BundleManifest,
    ModelVersionPublic,
    PromoteRequest,
    ReasonRequest,
    TransitionResponse,
    VersionPage,
)
from registry.api.transitions import transition_body
from registry.auth import require_scope
from registry.db import write_session
from registry.errors import NotFound
from registry.ids import SLUG_JSON_PATTERN
from registry.integrity import manifest, require_kept, verified_local_bundle
from registry.lifecycle import State
from registry.models import ModelVersion
from registry.storage import artefact_store

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


@router.get("/{version_id:path}/bundle", response_model=BundleManifest, responses={
    **_ONE, **problem_responses(422, why={422: "the bundle fails its integrity check"})},
    summary="A version's bundle: its files, sizes and digests (ETag: the bundle's digest)")
def get_bundle(version_id: VersionIdPath, session: SessionDep, config: ConfigDep, _: ReaderDep
               ) -> JSONResponse:
    version = _with_bundle(session, version_id)
    body = BundleManifest(version_id=version.version_id, track=version.track,
                          digest=version.bundle_digest,
                          files=manifest(_verified_bundle(version, config)))
    return JSONResponse(body.model_dump(), headers={"ETag": f'"{version.bundle_digest}"'})


@router.get("/{version_id}/bundle/{file_path:path}", responses={
    **_ONE, 200: {"content": {"application/octet-stream": {}},
                  "description": "the file (a Range is honoured); ETag: its SHA-256"},
    304: {"description": "unchanged since the ETag sent in If-None-Match"}},
    response_class=FileResponse, summary="One file of a version's bundle")
def get_bundle_file(version_id: VersionIdPath, file_path: str, session: SessionDep,
                    config: ConfigDep, _: ReaderDep,
                    if_none_match: Annotated[str | None, Header()] = None) -> Response:
    version = _with_bundle(session, version_id)
    bundle = _verified_bundle(version, config)
    entry = next((entry for entry in manifest(bundle) if entry["path"] == file_path), None)
    if entry is None:
        raise NotFound(f"bundle of {version_id} has no file {file_path[:200]!r}",
                       code="unknown_bundle_file")
    etag = f'"{entry["sha256"]}"'
    if if_none_match is not None and etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": etag})
    return FileResponse(bundle / file_path, media_type="application/octet-stream",
                        headers={"ETag": etag})


@router.get("/{version_id}/bundle.tar", responses={
    **_ONE, **problem_responses(422, why={422: "the bundle fails its integrity check"}),
    200: {"content": {"application/x-tar": {}},
          "description": "the whole bundle, SHA256SUMS first; ETag: the bundle's digest"}},
    response_class=StreamingResponse, summary="A version's whole bundle, as one tar")
def get_bundle_archive(version_id: VersionIdPath, session: SessionDep, config: ConfigDep,
                       _: ReaderDep) -> StreamingResponse:
    """Every file in one response, for a consumer loading the bundle."""
    version = _with_bundle(session, version_id)
    entries = bundle_archive.members(_verified_bundle(version, config))
    return StreamingResponse(bundle_archive.stream(entries), media_type="application/x-tar",
                             headers={"ETag": f'"{version.bundle_digest}"',
                                      "Content-Length": str(bundle_archive.archive_size(entries))})


def _verified_bundle(version: ModelVersion, config: Any) -> Path:
    """The bundle checked now, on this machine: from a bucket, the server's own verified copy
    (kept by digest, its archive fetched once), not the bucket read again for every request."""
    return verified_local_bundle(artefact_store(config), version.bundle_path,
                                 expected_digest=version.bundle_digest,
                                 cache_root=config.bundle_cache_root)


def _with_bundle(session: Session, version_id: str) -> ModelVersion:
    version = store.get_version(session, version_id)
    if version.kind == "external":
        raise NotFound(f"version {version_id} is external: Podium holds no bundle for it",
                       code="no_bundle")
    require_kept(version)
    return version


# Last: "{version_id:path}" would also match ".../promote" and answer a wrong Allow on a 405.
@router.get("/{version_id:path}", response_model=ModelVersionPublic, responses=_ONE,
            summary="One version")
def get_version(version_id: VersionIdPath, session: SessionDep, _: ReaderDep
                ) -> ModelVersionPublic:
    return ModelVersionPublic.model_validate(store.get_version(session, version_id))
