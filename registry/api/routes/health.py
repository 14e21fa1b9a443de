"""``GET /health``: liveness and database reachability (503 problem JSON when it is down)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import text

from registry.api.deps import EngineDep
from registry.api.problems import problem_responses
from registry.api.schemas import Health
from registry.db import translate_db_errors

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health, responses=problem_responses(503),
            summary="Liveness and database reachability")
def health(engine: EngineDep) -> Health:
    with translate_db_errors(), engine.connect() as connection:
        revision = connection.execute(
            text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    return Health(status="ok", database="ok", schema_revision=revision)
