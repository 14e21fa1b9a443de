"""RFC 9457 problem JSON for every error: domain errors, HTTP errors, validation, the unexpected.

A body never carries a traceback, SQL or a secret: domain errors carry their own ``detail``;
anything unexpected is logged server-side and answered with a 500 naming the request id.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from registry.errors import PodiumError, Unauthorized, describe_invalid_fields

log = logging.getLogger("registry.api")
PROBLEM_JSON = "application/problem+json"
LOGGED_PATH_CHARS = 200


def loggable_path(path: str, *, limit: int = LOGGED_PATH_CHARS) -> str:
    """The path quoted as a JSON string (control characters escaped), cut to ``limit`` chars:
    what logs and details show of a path, so a request can neither forge a line nor flood."""
    if len(path) <= limit:
        return json.dumps(path)
    return f"{json.dumps(path[:limit])}…(+{len(path) - limit} chars)"

HTTP_CODES = {
    400: ("bad_request", "Bad request"),
    401: ("unauthorized", "Unauthorized"),
    403: ("forbidden", "Forbidden"),
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    406: ("not_acceptable", "Not acceptable"),
    413: ("payload_too_large", "Request body too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
    422: ("validation_error", "Invalid request"),
}


# What every problem body holds (RFC 9457 plus ``code`` and ``request_id``); some add members:
# ``errors`` (validation), ``gate`` (a refused promotion), ``current_champion`` (a stale CAS).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail", "code", "request_id"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "description": "stable; scripts may rely on it"},
        "request_id": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object"},
                   "description": "validation errors: loc, msg, type"},
        "gate": {"type": ["object", "null"], "description": "the gate report of a refusal"},
        "current_champion": {"type": ["string", "null"]},
    },
    "additionalProperties": True,
}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
WHY = {
    400: "the body is not UTF-8 JSON text (bad_request)",
    401: "no valid bearer token (missing_token, invalid_token)",
    403: "the token's scope is too small (insufficient_scope)",
    404: "unknown track, version or event",
    409: "the transition is not allowed now",
    413: "the request body is over server.max_body_bytes (payload_too_large)",
    422: "invalid path, query, header or body (validation_error, invalid_version_id, "
         "invalid_track, ...)",
    503: "the database is unreachable, busy or not migrated",
}


def problem_responses(*statuses: int, why: dict[int, str] | None = None
                      ) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` for the problem JSON a route can answer with."""
    why = {**WHY, **(why or {})}
    return {status: {"description": why[status], "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}}}
            for status in statuses}


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_JSON


def problem_body(*, status: int, code: str, title: str, detail: str, request_id: str | None,
                 **extra: Any) -> dict[str, Any]:
    return {"type": f"https://podium.dev/problems/{code}", "title": title, "status": status,
            "detail": detail, "code": code, "request_id": request_id, **extra}


def problem_response(error: PodiumError, *, request_id: str | None,
                     headers: dict[str, str] | None = None) -> ProblemResponse:
    body = {**error.problem(), "request_id": request_id}
    headers = dict(headers or {})
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="podium"'
    return ProblemResponse(body, status_code=error.status, headers=headers)


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


async def _podium_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, PodiumError)
    failed_auth = getattr(request.app.state, "failed_auth", None)
    if isinstance(exc, Unauthorized) and failed_auth is not None:  # every 401 passes here
        failed_auth.record(request.client.host if request.client else "unknown",
                           code=exc.code,
                           request=f"{request.method} {loggable_path(request.url.path)}")
    return problem_response(exc, request_id=_request_id(request))


async def _http_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, HTTPException)
    code, title = HTTP_CODES.get(exc.status_code, (f"http_{exc.status_code}", "HTTP error"))
    path = request.url.path if len(request.url.path) <= 200 else request.url.path[:199] + "…"
    if exc.status_code == 404:
        detail = f"no such endpoint: {request.method} {path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {path}"
    elif exc.status_code == 413:
        detail = "the request body is over the server's limit"
    else:
        detail = exc.detail if isinstance(exc.detail, str) else title
    body = problem_body(status=exc.status_code, code=code, title=title, detail=detail,
                        request_id=_request_id(request))
    return ProblemResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", ""),
               "type": err.get("type", "")} for err in exc.errors()]
    fields = describe_invalid_fields(errors[:5])
    body = problem_body(status=422, code="validation_error", title="Invalid request",
                        detail=fields or "the request is invalid",
                        request_id=_request_id(request), errors=errors)
    return ProblemResponse(body, status_code=422)


async def _unexpected(request: Request, exc: Exception) -> ProblemResponse:
    request_id = _request_id(request)
    log.error("unhandled error on %s %s rid=%s", request.method, request.url.path, request_id,
              exc_info=exc)
    body = problem_body(status=500, code="internal_error", title="Internal server error",
                        detail=f"an unexpected error occurred; quote request id {request_id} "
                        "to the operator", request_id=request_id)
    headers = {"X-Request-ID": request_id} if request_id else None
    return ProblemResponse(body, status_code=500, headers=headers)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PodiumError, _podium_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    build_openapi = app.openapi

    def openapi() -> dict[str, Any]:  # the Problem schema the routes' responses refer to
        if app.openapi_schema is None:
            schema = build_openapi()
            schema.setdefault("components", {}).setdefault("schemas", {})[
                "Problem"] = PROBLEM_SCHEMA
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
