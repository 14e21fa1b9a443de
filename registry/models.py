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


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Track(SQLModel, table=True):
    __tablename__ = "track"

    name: str = Field(primary_key=True, sa_type=sa.String(48))
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))


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


class ShadowLease(SQLModel, table=True):
    """A named lease: the runner holding it is the only one scoring until it expires."""

    __tablename__ = "shadow_lease"

    name: str = Field(primary_key=True, sa_type=sa.String(64))
    holder: str = Field(sa_type=sa.String(128))
    expires_at: dt.datetime = Field(sa_type=sa.DateTime(timezone=True))


class ShadowError(SQLModel, table=True):
    """Why a version was skipped by a shadow run (e.g. its bundle failed verification)."""

    __tablename__ = "shadow_error"

    id: int | None = Field(default=None, primary_key=True)
    version_id: str = Field(foreign_key="model_version.version_id", index=True,
                            sa_type=sa.String(80))
    code: str = Field(sa_type=sa.String(64))
    message: str = Field(sa_type=sa.Text())
    created_at: dt.datetime = Field(default_factory=utcnow, sa_type=sa.DateTime(timezone=True))
