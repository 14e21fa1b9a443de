"""The API's dependencies as annotated types: the engine, a read session, the caller.

``ReaderDep`` lets anyone through when ``server.public_reads`` is on; otherwise it and the others
need a bearer token (401 without a valid one, 403 when its scope is too small).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy import Engine
from sqlmodel import Session

from registry.api.bearer import BearerToken, identify_caller
from registry.auth import Principal, require_scope
from registry.config import PodiumConfig
from registry.db import read_session
from registry.ids import (
    SLUG_JSON_PATTERN,
    VERSION_ID_JSON_PATTERN,
    validate_slug,
    validate_version_id,
)

MAX_SQL_INT = 2**63 - 1  # the largest OFFSET SQLite and PostgreSQL (bigint) accept
MAX_ROW_ID = 2**31 - 1  # the largest integer primary key (PostgreSQL's INTEGER)


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


def get_config(request: Request) -> PodiumConfig:
    return request.app.state.config


EngineDep = Annotated[Engine, Depends(get_engine)]
ConfigDep = Annotated[PodiumConfig, Depends(get_config)]


def get_session(engine: EngineDep) -> Iterator[Session]:
    with read_session(engine) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


RequestIdDep = Annotated[str | None, Depends(request_id)]


def _caller(request: Request, token: BearerToken) -> Principal:
    return identify_caller(request, token)


CallerDep = Annotated[Principal, Depends(_caller)]  # resolved once per request (FastAPI's cache)


def require(scope: str) -> Callable[..., Principal]:
    """A dependency: the caller, who must hold at least ``scope``."""

    def dependency(principal: CallerDep) -> Principal:
        return require_scope(principal, scope)

    return dependency


ReaderDep = Annotated[Principal, Depends(require("read"))]
PromoterDep = Annotated[Principal, Depends(require("promote"))]
AdminDep = Annotated[Principal, Depends(require("admin"))]


# The path checks depend on the caller so that a request without a valid token gets its 401
# before any 422: nothing about the API's input rules is answered to an anonymous caller.
def _version_id(version_id: Annotated[str, Path(
        description="<label>-<YYYYMMDD>-<8 hex>; the date is the train cutoff",
        examples=["v3.1-resmom-20250630-3fa2c1de"],
        json_schema_extra={"pattern": VERSION_ID_JSON_PATTERN})], _: CallerDep) -> str:
    return validate_version_id(version_id)


def _track(track: Annotated[str, Path(examples=["equities-daily"],
                                      json_schema_extra={"pattern": SLUG_JSON_PATTERN})],
           _: CallerDep) -> str:
    return validate_slug(track, what="track")


VersionIdPath = Annotated[str, Depends(_version_id)]
TrackPath = Annotated[str, Depends(_track)]
