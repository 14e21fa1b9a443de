"""External versions: register one, submit its daily predictions, list what arrived."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from registry.api.deps import (
    ConfigDep,
    EngineDep,
    PromoterDep,
    ReaderDep,
    RequestIdDep,
    VersionIdPath,
)
from registry.api.prediction_bodies import (
    JSON_TYPES,
    MAX_ASSET_NAME,
    MAX_ASSETS,
    PARQUET_TYPES,
    parse_predictions,
)
from registry.api.problems import problem_responses
from registry.api.schemas import (
    ExternalVersionRequest,
    ModelVersionPublic,
    SubmissionList,
    SubmissionPublic,
    SubmissionReceipt,
)
from registry.db import write_session
from registry.external import register_external_version

router = APIRouter(tags=["external versions"])
DayPath = Annotated[dt.date, Path(description="the day whose returns the scores forecast "
                                  "(YYYY-MM-DD); it must not have landed yet")]
_BODY = {"content": {JSON_TYPES[0]: {"schema": {
    "type": "object", "required": ["scores"], "additionalProperties": False,
    "properties": {"scores": {
        "type": "object", "minProperties": 1, "maxProperties": MAX_ASSETS,
        "propertyNames": {"minLength": 1, "maxLength": MAX_ASSET_NAME,
                          "pattern": "^[^\\u0000]*$"},
        "additionalProperties": {"type": "number"},
        "description": "asset -> score; each asset once, every score finite"}}}},
    PARQUET_TYPES[0]: {"schema": {"type": "string", "format": "binary",
                                  "description": "columns asset (string), score (number)"}}},
    "required": True}


@router.post("/external-versions", response_model=ModelVersionPublic, status_code=201,
             responses={200: {"model": ModelVersionPublic,
                              "description": "the same submission was already registered"},
                        **problem_responses(400, 401, 403, 409, 413, 422, 503, why={
                            409: "another submission already has this version id"})},
             summary="Register an external version (trained anywhere) as a challenger")
def register_external(body: ExternalVersionRequest, principal: PromoterDep, engine: EngineDep,
                      request_id: RequestIdDep, request: Request) -> JSONResponse:
    with write_session(engine) as session:
        version, created = register_external_version(
            session, track=body.track, label=body.label, train_cutoff=body.train_cutoff,
            description=body.description, uri=body.uri, digest=body.digest,
            metadata=body.metadata, actor=principal.name, request_id=request_id)
        public = ModelVersionPublic.model_validate(version).model_dump(mode="json")
    if created:
        request.app.state.notify_events()
    return JSONResponse(public, status_code=201 if created else 200)


@router.put("/versions/{version_id}/predictions/{day}", response_model=SubmissionReceipt,
            status_code=201, openapi_extra={"requestBody": _BODY},
            responses=problem_responses(
                401, 403, 404, 409, 413, 415, 422, 503,
                why={409: "the day's returns have landed or it is settled (no look-ahead), "
                          "other scores were already submitted for it, or the version is not "
                          "an external challenger or champion",
                     415: "the body is neither JSON nor Parquet (unsupported_media_type)",
                     422: "duplicate assets, non-finite scores, no known asset, a day not "
                          "after the train cutoff, or an unreadable body"}),
            summary="Submit an external version's scores for a day whose returns have not "
                    "landed")
async def submit_predictions(version_id: VersionIdPath, day: DayPath, principal: PromoterDep,
                             engine: EngineDep, config: ConfigDep, request: Request
                             ) -> JSONResponse:
    from registry.submissions import submit_predictions as submit  # pandas: on first use

    assets, scores = parse_predictions(await request.body(), request.headers.get("content-type"))
    accepted = await run_in_threadpool(submit, engine, config, version_id=version_id, day=day,
                                       assets=assets, scores=scores, actor=principal.name)
    receipt = SubmissionReceipt(submission=SubmissionPublic.model_validate(accepted.submission),
                                created=accepted.created,
                                unknown_assets=accepted.unknown_assets)
    return JSONResponse(receipt.model_dump(mode="json"),
                        status_code=201 if accepted.created else 200)


@router.get("/versions/{version_id}/predictions", response_model=SubmissionList,
            responses=problem_responses(401, 404, 422, 503),
            summary="The days an external version submitted, and when each arrived")
def list_submissions(version_id: VersionIdPath, engine: EngineDep, _: ReaderDep
                     ) -> SubmissionList:
    from registry.submissions import list_submissions as submitted

    return SubmissionList(items=[SubmissionPublic.model_validate(row)
                                 for row in submitted(engine, version_id)])
