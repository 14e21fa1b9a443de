"""Registering an external version: a model trained anywhere, competing on submitted predictions.

It starts as a challenger like any other; the audit records who registered it. Registering the
same submission again returns the existing version; a different submission that yields an id
already taken is ``AlreadyExists`` (409). See :mod:`registry.provenance` for its identity.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlmodel import Session

from registry.lifecycle import Action, next_state
from registry.models import ModelVersion, utcnow
from registry.provenance import external_version_id, provenance_record, submitted
from registry.store import add_version, same_or_conflict

EXTERNAL = "external"


def register_external_version(
    session: Session,
    *,
    track: str,
    label: str,
    train_cutoff: dt.date,
    actor: str,
    description: str = "",
    uri: str | None = None,
    digest: str | None = None,
    metadata: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Add an external challenger. Returns ``(version, created)``."""
    provenance = provenance_record(uri=uri, digest=digest, metadata=metadata)
    submission = submitted(track=track, label=label, train_cutoff=train_cutoff,
                           description=description, provenance=provenance)
    version_id, fingerprint = external_version_id(submission)
    existing = session.get(ModelVersion, version_id)
    if existing is not None:
        return same_or_conflict(existing, fingerprint), False
    now = utcnow()
    version = ModelVersion(
        version_id=version_id, track=track, label=label, train_cutoff=train_cutoff,
        fingerprint=fingerprint, state=next_state(Action.REGISTER, None).value, kind=EXTERNAL,
        bundle_path="", bundle_digest="", provenance=provenance,
        details={"description": description}, created_at=now, updated_at=now)
    return add_version(session, version, actor=actor, reason="registered external version",
                       request_id=request_id)
