"""The configured webhooks' delivery status, per hook (``admin`` only: URLs and errors)."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel

from registry.api.deps import AdminDep, ConfigDep, EngineDep
from registry.api.problems import problem_responses
from registry.api.webhooks import hook_status

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


class WebhookStatus(BaseModel):
    url: str
    secret_env: str
    pending: int
    delivered: int
    failed: int
    last_status: int | None
    last_error: str | None
    last_delivered_at: dt.datetime | None


@router.get("", response_model=list[WebhookStatus],
            responses=problem_responses(401, 403, 503),
            summary="Each configured webhook: deliveries by state and the last error")
def list_webhooks(engine: EngineDep, config: ConfigDep, _: AdminDep) -> list[WebhookStatus]:
    return [WebhookStatus.model_validate(row)
            for row in hook_status(engine, config.server.webhooks)]
