"""The JSON answer to a transition (promote, retire, rollback): what moved, and on what grounds."""

from __future__ import annotations

from typing import Any

from registry.api.schemas import ModelVersionPublic, TransitionPublic, TransitionResponse
from registry.store import Transition, as_utc


def transition_body(transition: Transition, *, gate: dict[str, Any] | None) -> dict[str, Any]:
    audit = transition.audit
    response = TransitionResponse(
        transition=TransitionPublic(
            action=audit.action, track=audit.track, version_id=audit.version_id,
            from_state=audit.from_state, to_state=audit.to_state,
            displaced_version_id=audit.displaced_version_id, forced=audit.forced,
            actor=audit.actor, audit_id=audit.id or 0, request_id=audit.request_id,
            at=as_utc(audit.created_at)),
        version=ModelVersionPublic.model_validate(transition.version),
        displaced=(ModelVersionPublic.model_validate(transition.displaced)
                   if transition.displaced is not None else None),
        gate=gate,
    )
    return response.model_dump(mode="json")
