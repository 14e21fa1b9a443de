"""What the API takes and returns (the tables stay in ``registry.models``)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from registry.ids import SLUG_JSON_PATTERN, VERSION_ID_JSON_PATTERN, validate_version_id
from registry.provenance import DIGEST_PATTERN, MAX_DESCRIPTION, MAX_URI, URI_PATTERN
from registry.store import as_utc

MAX_REASON = 2000
# Documented and enforced: a reason has no NUL (PostgreSQL's text refuses it) and is more than
# white space (the store's check); a champion id to compare with is a version id, or "" for
# "no champion yet".
_REASON = {"pattern": r"^[^\u0000]*[^\s\u0000][^\u0000]*$"}
_EXPECTED = {"pattern": rf"^$|{VERSION_ID_JSON_PATTERN}"}


# SQLite hands back naive datetimes (written in UTC): the API always answers with an offset.
UtcDateTime = Annotated[dt.datetime, AfterValidator(as_utc)]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ModelVersionPublic(_Public):
    version_id: str
    track: str
    label: str
    state: str
    train_cutoff: dt.date
    fingerprint: str
    spec_name: str | None
    bundle_path: str
    bundle_digest: str
    details: dict[str, Any]
    created_at: UtcDateTime
    updated_at: UtcDateTime
    champion_since: UtcDateTime | None
    kind: str = Field("builtin", description="builtin (a bundle) or external (trained anywhere; "
                      "its bundle_path and bundle_digest are empty)")
    provenance: dict[str, Any] | None = Field(
        None, description="an external version's artefact uri, digest and metadata")


class BundleFile(BaseModel):
    path: str = Field(description="relative to the bundle; SHA256SUMS first")
    size: int
    sha256: str


class BundleManifest(BaseModel):
    """A version's bundle: every file, its size and digest (``digest``: of SHA256SUMS, the one
    registered). Each file downloads from ``/versions/{version_id}/bundle/{path}``."""

    version_id: str
    track: str
    digest: str
    files: list[BundleFile]


class ChampionPublic(_Public):
    """The consumers' hot path: just enough to find and check the bundle."""

    version_id: str
    track: str
    bundle_path: str
    bundle_digest: str
    champion_since: UtcDateTime | None
    kind: str = Field("builtin", description="builtin, or external: no bundle; load it from "
                      "its provenance")
    provenance: dict[str, Any] | None = Field(
        None, description="external only: artefact uri, digest and metadata")
    description: str | None = Field(None, description="external only")


class AuditEntryPublic(_Public):
    id: int
    track: str
    version_id: str
    action: str
    from_state: str | None
    to_state: str
    displaced_version_id: str | None
    actor: str
    reason: str
    gate_report: dict[str, Any] | None
    forced: bool
    request_id: str | None
    created_at: UtcDateTime


class TrackPublic(BaseModel):
    name: str
    champion: str | None


class TrackList(BaseModel):
    items: list[TrackPublic]


class VersionPage(BaseModel):
    items: list[ModelVersionPublic]
    limit: int
    offset: int
    next: str | None = Field(None, description="URL of the next page; null on the last page")


class AuditPage(BaseModel):
    items: list[AuditEntryPublic]
    limit: int
    offset: int
    next: str | None = None


class LeaderboardMetrics(BaseModel):
    """Net-of-cost performance over a version's scored days (returns per day, as fractions)."""

    days: int
    mean_gross: float | None
    mean_net: float | None
    net_sharpe: float | None = Field(None, description="annualised over 252 days")
    net_volatility: float | None = Field(None, description="annualised")
    max_drawdown: float | None
    hit_rate: float | None
    mean_turnover: float | None
    cost_drag: float | None = Field(None, description="mean cost per day")
    mean_rank_ic: float | None
    breakeven_cost_bps: float | None


class LeaderboardRowPublic(BaseModel):
    version_id: str
    state: str
    spec: str
    train_cutoff: str | None
    metrics: LeaderboardMetrics
    verdict: str | None = Field(None, description="the gate's verdict (challengers only)")
    reason: str | None = Field(None, description="the verdict's first reason")
    report: dict[str, Any] | None = Field(None, description="the gate's full report")


class CumulativeNet(BaseModel):
    days: list[str]
    cumulative_net: list[float]


class Leaderboard(BaseModel):
    track: str
    winner: str | None = Field(None, description="the challenger the gate would promote")
    winner_reason: str | None
    spa_pvalue: float | None
    rows: list[LeaderboardRowPublic] = Field(description="champion first, then challengers by "
                                                   "verdict and mean net, retired last")
    curves: dict[str, CumulativeNet] = Field(description="cumulative net return per version")


class Health(BaseModel):
    status: str
    database: str
    schema_revision: str | None


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _version_id_or_empty(value: str | None) -> str | None:
    if value:
        validate_version_id(value)
    return value


class ReasonRequest(_Request):
    reason: str = Field(..., min_length=1, max_length=MAX_REASON, json_schema_extra=_REASON)

    _reason = field_validator("reason")(_no_nul)


class PromoteRequest(ReasonRequest):
    force: bool = False
    expected_champion: Annotated[str | None, AfterValidator(_version_id_or_empty)] = Field(
        None, description="compare-and-set: the champion you believe is current; \"\" for none "
        "yet; null skips the check", json_schema_extra=_EXPECTED)


class RollbackRequest(ReasonRequest):
    expected_champion: Annotated[str | None, AfterValidator(_version_id_or_empty)] = Field(
        None, description="compare-and-set: the champion you believe is current; null skips the "
        "check", json_schema_extra=_EXPECTED)


class TransitionPublic(BaseModel):
    action: str
    track: str
    version_id: str
    from_state: str | None
    to_state: str
    displaced_version_id: str | None
    forced: bool
    actor: str
    audit_id: int
    request_id: str | None
    at: dt.datetime


class TransitionResponse(BaseModel):
    transition: TransitionPublic
    version: ModelVersionPublic
    displaced: ModelVersionPublic | None
    gate: dict[str, Any] | None = Field(None, description="the gate report the transition used")


class DeliveryPublic(_Public):
    id: int
    event_id: int
    url: str
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: UtcDateTime
    delivered_at: UtcDateTime | None


class EventPublic(BaseModel):
    id: int
    kind: str
    track: str
    version_id: str
    payload: dict[str, Any]
    created_at: dt.datetime
    deliveries: list[DeliveryPublic]


class EventPage(BaseModel):
    items: list[EventPublic]
    next: str | None = None


class ExternalVersionRequest(_Request):
    """A model trained anywhere: what identifies it (its fingerprint covers all of it). Its
    provenance is an artefact ``uri``, a ``digest``, or both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["uri"], "properties": {"uri": {"type": "string"}}},
        {"required": ["digest"], "properties": {"digest": {"type": "string"}}}]})

    track: str = Field(..., json_schema_extra={"pattern": SLUG_JSON_PATTERN})
    label: str = Field(..., json_schema_extra={"pattern": SLUG_JSON_PATTERN})
    train_cutoff: dt.date = Field(..., description="the last day of data it was trained on")
    description: str = Field("", max_length=MAX_DESCRIPTION,
                             json_schema_extra={"pattern": r"^[^\u0000]*$"})
    uri: str | None = Field(None, max_length=MAX_URI, description="where its artefact lives",
                            json_schema_extra={"pattern": URI_PATTERN})
    digest: str | None = Field(None, description="its artefact's digest, e.g. sha256:<hex>",
                               json_schema_extra={"pattern": DIGEST_PATTERN})
    metadata: dict[str, Any] = Field(default_factory=dict, description="free-form JSON")

    _description = field_validator("description")(_no_nul)

    @field_validator("train_cutoff", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if not isinstance(value, str | dt.date):  # a number is not a day (no timestamps)
            raise ValueError("must be a date, YYYY-MM-DD")
        return value


class SubmissionPublic(_Public):
    version_id: str
    day: dt.date = Field(description="the day whose returns the scores forecast")
    arrived_at: UtcDateTime
    n_assets: int = Field(description="scores kept (assets in the track's universe)")
    n_unknown: int = Field(description="scores ignored: assets not in the track's universe")
    digest: str
    actor: str


class SubmissionReceipt(BaseModel):
    submission: SubmissionPublic
    created: bool = Field(description="false: the same predictions were already stored")
    unknown_assets: list[str] = Field(description="the first few ignored assets")


class SubmissionList(BaseModel):
    items: list[SubmissionPublic]
