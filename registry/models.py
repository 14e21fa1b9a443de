"""The registry's tables. Only Alembic creates or changes them (``registry migrate``).

``ModelVersion`` is one trained model on a track; ``AuditEntry`` is the append-only log of every
transition; ``Track`` exists so that a promotion can lock one row per track. At most one champion
per track is enforced by the database itself: a partial unique index on ``track`` where
``state = 'champion'``, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
JSONType = sa.JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
STATES = ("challenger", "champion", "retired")
KINDS = ("builtin", "external")  # trained by Podium's trainer (a bundle), or anywhere else


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Track(SQLModel, table=True):
    __tablename__ = "track"

    name: str = Field(primary_key=True, sa_type=sa.String(48))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    # replaced by database triggers whenever the track's versions or settled days change
    # (migrations 0007 and 0008): what the stored leaderboard and page are keyed by
    evidence_tag: int = Field(default=0, sa_type=sa.BigInteger(),
                              sa_column_kwargs={"server_default": "0"})


class ModelVersion(SQLModel, table=True):
    __tablename__ = "model_version"
    __table_args__ = (
        sa.Index(
            "uq_model_version_one_champion",
            "track",
            unique=True,
            sqlite_where=sa.text("state = 'champion'"),
            postgresql_where=sa.text("state = 'champion'"),
        ),
        sa.CheckConstraint(
            "state IN ('challenger', 'champion', 'retired')", name="state"
        ),
        sa.CheckConstraint("kind IN ('builtin', 'external')", name="kind"),
    )

    version_id: str = Field(primary_key=True, sa_type=sa.String(80))
    track: str = Field(foreign_key="track.name", index=True, sa_type=sa.String(48))
    label: str = Field(sa_type=sa.String(48))
    train_cutoff: dt.date = Field(sa_type=sa.Date())
    fingerprint: str = Field(sa_type=sa.String(64))
    state: str = Field(default="challenger", sa_type=sa.String(16))
    spec_name: str | None = Field(default=None, sa_type=sa.String(48))
    bundle_path: str = Field(sa_type=sa.String(512))
    bundle_digest: str = Field(sa_type=sa.String(64))
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    updated_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    champion_since: dt.datetime | None = Field(default=None,
                                               sa_type=sa.DateTime(timezone=True))
    # An external version has no bundle (empty bundle_path and bundle_digest): it competes
    # through submitted predictions, and its provenance (artefact URI and/or digest, free-form
    # metadata, description) is what was registered, covered by its fingerprint.
    kind: str = Field(default="builtin", sa_type=sa.String(16),
                      sa_column_kwargs={"server_default": "builtin"})
    provenance: dict[str, Any] | None = Field(default=None, sa_type=JSONType)


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    track: str = Field(foreign_key="track.name", index=True, sa_type=sa.String(48))
    version_id: str = Field(foreign_key="model_version.version_id", index=True,
                            sa_type=sa.String(80))
    action: str = Field(sa_type=sa.String(16))
    from_state: str | None = Field(default=None, sa_type=sa.String(16))
    to_state: str = Field(sa_type=sa.String(16))
    displaced_version_id: str | None = Field(default=None, sa_type=sa.String(80))
    actor: str = Field(sa_type=sa.String(128))
    reason: str = Field(default="", sa_type=sa.Text())
    gate_report: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    forced: bool = Field(default=False)
    request_id: str | None = Field(default=None, sa_type=sa.String(128))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class ShadowScore(SQLModel, table=True):
    """One settled shadow day of one version: written once, ever (the primary key says so)."""

    __tablename__ = "shadow_score"

    version_id: str = Field(foreign_key="model_version.version_id", primary_key=True,
                            sa_type=sa.String(80))
    day: dt.date = Field(primary_key=True, sa_type=sa.Date())
    gross: float
    turnover: float
    cost: float
    net: float
    rank_ic: float | None = None
    n_assets: int
    settled_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class PredictionSubmission(SQLModel, table=True):
    """One day of an external version's submitted predictions: when they arrived, and what.

    ``day`` is the day whose returns the scores forecast; they are accepted only before that
    day lands, once (the primary key), and kept as Parquet beside the built-in predictions.
    """

    __tablename__ = "prediction_submission"

    version_id: str = Field(foreign_key="model_version.version_id", primary_key=True,
                            sa_type=sa.String(80))
    day: dt.date = Field(primary_key=True, sa_type=sa.Date())
    arrived_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    n_assets: int
    n_unknown: int
    digest: str = Field(sa_type=sa.String(64))
    actor: str = Field(sa_type=sa.String(128))


class ShadowLease(SQLModel, table=True):
    """A named lease: the runner holding it is the only one scoring until it expires."""

    __tablename__ = "shadow_lease"

    name: str = Field(primary_key=True, sa_type=sa.String(64))
    holder: str = Field(sa_type=sa.String(128))
    expires_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))
    acquired_at: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class LandedDay(SQLModel, table=True):
    """The digest of a track's landed day when it was first used: a later change is refused."""

    __tablename__ = "landed_day"

    track: str = Field(primary_key=True, sa_type=sa.String(48))
    day: dt.date = Field(primary_key=True)
    digest: str = Field(sa_type=sa.String(64))
    recorded_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class ShadowError(SQLModel, table=True):
    """Why a version was skipped by a shadow run (e.g. its bundle failed verification)."""

    __tablename__ = "shadow_error"

    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_version.version_id", index=True,
                            sa_type=sa.String(80))
    code: str = Field(sa_type=sa.String(64))
    message: str = Field(sa_type=sa.Text())
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


# --------------------------------------------------------------------------- the service's tables

SCOPES = ("read", "promote", "admin")
DELIVERY_STATES = ("pending", "delivered", "failed")


class ApiToken(SQLModel, table=True):
    """A bearer token: only the SHA-256 of the token is stored, never the token itself."""

    __tablename__ = "api_token"
    __table_args__ = (sa.CheckConstraint("scope IN ('read', 'promote', 'admin')", name="scope"),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, sa_type=sa.String(128))
    scope: str = Field(sa_type=sa.String(16))
    token_hash: str = Field(unique=True, sa_type=sa.String(64))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    revoked_at: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))


class Event(SQLModel, table=True):
    """The outbox: one row per transition's audit entry, written in the transition's own
    transaction."""

    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    audit_id: int = Field(foreign_key="audit_entry.id", unique=True)
    kind: str = Field(sa_type=sa.String(32))
    track: str = Field(index=True, sa_type=sa.String(48))
    version_id: str = Field(sa_type=sa.String(80))
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSONType)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class WebhookDelivery(SQLModel, table=True):
    """One event sent to one configured webhook URL: its state, attempts and last error."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "url", name="uq_webhook_delivery_event_url"),
        sa.Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        sa.CheckConstraint("state IN ('pending', 'delivered', 'failed')", name="state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: int = Field(foreign_key="event.id", index=True)
    url: str = Field(sa_type=sa.String(2048))
    state: str = Field(default="pending", sa_type=sa.String(16))
    attempts: int = Field(default=0)
    last_status: int | None = None
    last_error: str | None = Field(default=None, sa_type=sa.Text())
    next_attempt_at: dt.datetime = Field(default_factory=utcnow,
                                         sa_type=sa.DateTime(timezone=True))
    delivered_at: dt.datetime | None = Field(default=None, sa_type=sa.DateTime(timezone=True))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


class IdempotencyRecord(SQLModel, table=True):
    """The first answer to a mutating request sent with an ``Idempotency-Key`` (per token)."""

    __tablename__ = "idempotency_record"

    token_id: int = Field(foreign_key="api_token.id", primary_key=True)
    key: str = Field(primary_key=True, sa_type=sa.String(128))
    request_hash: str = Field(sa_type=sa.String(64))
    status_code: int | None = None  # None while the first request is still running
    response: dict[str, Any] | None = Field(default=None, sa_type=JSONType)
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
    claimed_by: str | None = Field(default=None, sa_type=sa.String(160))  # host:pid:nonce


EVENT_KINDS = {
    "register": "version.registered",
    "promote": "version.promoted",
    "retire": "version.retired",
    "rollback": "track.rolled_back",
}


@sa.event.listens_for(AuditEntry, "after_insert")
def _write_outbox_event(_mapper: Any, connection: sa.Connection, entry: AuditEntry) -> None:
    """Every transition's audit entry gets its event row in the same transaction, whoever wrote
    the entry; a refused promotion (audited, nothing moved) is not an event."""
    if entry.action not in EVENT_KINDS:
        return
    gate = entry.gate_report or None
    payload = {
        "type": EVENT_KINDS[entry.action],
        "audit_id": entry.id, "track": entry.track, "version_id": entry.version_id,
        "action": entry.action, "from_state": entry.from_state, "to_state": entry.to_state,
        "displaced_version_id": entry.displaced_version_id, "actor": entry.actor,
        "reason": entry.reason, "forced": entry.forced, "request_id": entry.request_id,
        "gate": {"passed": gate.get("passed"), "verdict": gate.get("verdict")} if gate else None,
        "occurred_at": (entry.created_at or utcnow()).isoformat(),
    }
    connection.execute(sa.insert(Event.__table__).values(
        audit_id=entry.id, kind=payload["type"], track=entry.track,
        version_id=entry.version_id, payload=payload, created_at=utcnow()))
