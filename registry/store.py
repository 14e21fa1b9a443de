"""The registry's store: the lifecycle applied to the database, one transaction per action.

Every function takes the session first; writes expect a ``registry.db.write_session`` (on SQLite
it holds the write lock from the first statement; on PostgreSQL the track's row is locked with
``SELECT … FOR UPDATE``), do their checks inside that transaction, append the audit entry and
commit. Callers never see SQLAlchemy errors: constraint violations become domain errors.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, func, literal_column
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from registry.errors import (
    AlreadyExists,
    ChampionChanged,
    InvalidInput,
    InvalidTransition,
    NotFound,
)
from registry.ids import MAX_PAGE, parse_version_id, validate_slug, validate_version_id
from registry.integrity import bundle_key, verify_stored_bundle, verify_version
from registry.lifecycle import Action, State, next_state
from registry.models import AuditEntry, ModelVersion, Track, utcnow
from registry.storage import ArtefactStore, open_store
from trainer.jsonsafe import finite_or_null

NO_CHAMPION = ""  # pass as expected_champion to require that the track has no champion yet


@dataclass(frozen=True)
class Transition:
    action: Action
    version: ModelVersion
    displaced: ModelVersion | None
    audit: AuditEntry


# --------------------------------------------------------------------------- reads


def get_version(session: Session, version_id: str) -> ModelVersion:
    validate_version_id(version_id)
    version = session.get(ModelVersion, version_id)
    if version is None:
        raise NotFound(f"unknown version {version_id!r}", code="unknown_version")
    return version


def list_tracks(session: Session) -> list[str]:
    return list(session.exec(select(Track.name).order_by(Track.name)))


def list_versions(session: Session, *, track: str | None = None, state: str | None = None,
                  limit: int = 100, offset: int = 0) -> list[ModelVersion]:
    query = select(ModelVersion)
    if track is not None:
        query = query.where(ModelVersion.track == validate_slug(track, what="track"))
    if state is not None:
        query = query.where(ModelVersion.state == State(_known_state(state)).value)
    query = query.order_by(col(ModelVersion.track), col(ModelVersion.created_at).desc(),
                           col(ModelVersion.version_id))
    return list(session.exec(query.offset(max(offset, 0)).limit(_page(limit))))


def champion_criteria(track: Any) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    """``WHERE`` "the champion of ``track``" (a value or a bind parameter). 'champion' is written
    into the SQL, not bound: with a bound state, SQLite re-plans the statement on every execution
    (the partial unique index depends on the value)."""
    return (col(ModelVersion.track) == track,
            col(ModelVersion.state) == literal_column(f"'{State.CHAMPION.value}'"))


def find_champion(session: Session, track: str) -> ModelVersion | None:
    return session.exec(select(ModelVersion).where(*champion_criteria(track))).first()


def resolve_champion(session: Session, track: str) -> ModelVersion:
    """The track's champion: what consumers load."""
    validate_slug(track, what="track")
    champion = find_champion(session, track)
    if champion is None:
        if session.get(Track, track) is None:
            raise NotFound(f"unknown track {track!r}", code="unknown_track")
        raise NotFound(f"track {track!r} has no champion yet", code="no_champion")
    return champion


def list_audit(session: Session, *, track: str | None = None, version_id: str | None = None,
               limit: int = 100, offset: int = 0) -> list[AuditEntry]:
    query = select(AuditEntry)
    if track is not None:
        query = query.where(AuditEntry.track == validate_slug(track, what="track"))
    if version_id is not None:
        query = query.where(AuditEntry.version_id == validate_version_id(version_id))
    query = query.order_by(col(AuditEntry.id).desc())
    return list(session.exec(query.offset(max(offset, 0)).limit(_page(limit))))


def count_versions(session: Session, *, track: str) -> int:
    return session.exec(
        select(func.count()).select_from(ModelVersion).where(ModelVersion.track == track)
    ).one()


# --------------------------------------------------------------------------- writes


def register_version(
    session: Session,
    *,
    track: str,
    version_id: str,
    fingerprint: str,
    artefacts_root: Path | ArtefactStore,
    actor: str,
    spec_name: str | None = None,
    details: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> tuple[ModelVersion, bool]:
    """Add a challenger (bundle verified first). Returns ``(version, created)``.

    Idempotent on the full fingerprint: the same id with the same fingerprint returns the existing
    version; the same id with another fingerprint is ``AlreadyExists``. Never touches a champion.
    """
    validate_slug(track, what="track")
    parsed = parse_version_id(version_id)
    if not fingerprint.startswith(parsed.fp) or len(fingerprint) != 64:
        raise InvalidInput(f"version id {version_id} does not match fingerprint "
                           f"{fingerprint[:12]}…", code="fingerprint_mismatch")
    key = bundle_key(track=track, version_id=version_id)
    digest = verify_stored_bundle(open_store(artefacts_root), key, committed_here=True)
    existing = session.get(ModelVersion, version_id)
    if existing is not None:
        return same_or_conflict(existing, fingerprint), False
    now = utcnow()
    version = ModelVersion(
        version_id=version_id, track=track, label=parsed.label, train_cutoff=parsed.train_cutoff,
        fingerprint=fingerprint, state=next_state(Action.REGISTER, None).value,
        spec_name=spec_name, bundle_path=key,
        bundle_digest=digest, details=finite_or_null(details or {}), created_at=now, updated_at=now,
    )
    return add_version(session, version, actor=actor, reason="registered",
                       request_id=request_id)


def add_version(session: Session, version: ModelVersion, *, actor: str, reason: str,
                request_id: str | None = None) -> tuple[ModelVersion, bool]:
    """Insert a new challenger and its audit entry in one transaction; a concurrent insert of
    the same id resolves as :func:`register_version` does. Returns ``(version, created)``."""
    _ensure_track(session, version.track)
    session.add(version)
    session.flush()  # the version row before its audit entry (foreign key)
    audit = audit_entry(version, Action.REGISTER, None, actor=actor, reason=reason,
                        request_id=request_id)
    session.add(audit)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.get(ModelVersion, version.version_id)
        if existing is None:
            raise
        return same_or_conflict(existing, version.fingerprint), False
    return version, True


def find_by_fingerprint(session: Session, fingerprint: str) -> ModelVersion | None:
    return session.exec(
        select(ModelVersion).where(ModelVersion.fingerprint == fingerprint)
    ).first()


def retire_version(session: Session, *, version_id: str, actor: str, reason: str,
                   request_id: str | None = None) -> Transition:
    """Challenger → retired (a champion is never retired directly)."""
    require_reason(reason, "retiring a version")
    version = lock_version(session, version_id)
    target = next_state(Action.RETIRE, State(version.state), version_id=version_id)
    previous = State(version.state)
    version.state = target.value
    version.updated_at = utcnow()
    session.add(version)
    audit = audit_entry(version, Action.RETIRE, previous, actor=actor, reason=reason,
                   request_id=request_id)
    session.add(audit)
    session.commit()
    return Transition(Action.RETIRE, version, None, audit)


def rollback_track(session: Session, *, track: str, actor: str, reason: str,
                   artefacts_root: Path | ArtefactStore, request_id: str | None = None,
                   expected_champion: str | None = None) -> Transition:
    """Current champion → retired; the champion it replaced → champion again."""
    require_reason(reason, "a rollback")
    validate_slug(track, what="track")
    _lock_track(session, track)
    champion = resolve_champion(session, track)
    if expected_champion is not None and expected_champion != champion.version_id:
        raise ChampionChanged(f"expected champion {expected_champion or '(none)'} on track "
                              f"{track}, but it is {champion.version_id}",
                              current_champion=champion.version_id)
    made_champion = session.exec(
        select(AuditEntry)
        .where(AuditEntry.version_id == champion.version_id,
               AuditEntry.action == Action.PROMOTE.value)
        .order_by(col(AuditEntry.id).desc())
    ).first()
    previous_id = made_champion.displaced_version_id if made_champion else None
    if previous_id is None:
        raise _no_previous(champion, track)
    previous = session.get(ModelVersion, previous_id)
    if previous is None or previous.state != State.RETIRED.value:
        raise _no_previous(champion, track)
    verify_version(artefacts_root, previous)
    now = utcnow()
    champion.state = next_state(Action.ROLLBACK, State.CHAMPION).value
    champion.updated_at = now
    session.add(champion)
    session.flush()
    previous.state = next_state(Action.RESTORE, State.RETIRED).value
    previous.updated_at = previous.champion_since = now
    session.add(previous)
    audit = audit_entry(previous, Action.ROLLBACK, State.RETIRED, actor=actor, reason=reason,
                   request_id=request_id, displaced=champion)
    session.add(audit)
    commit_swap(session, track)
    return Transition(Action.ROLLBACK, previous, champion, audit)


# --------------------------------------------------------------------------- helpers


def _page(limit: int) -> int:
    return min(max(limit, 1), MAX_PAGE)


def _known_state(state: str) -> str:
    if state not in {s.value for s in State}:
        raise InvalidInput(f"unknown state {state!r}; states are challenger, champion, retired",
                           code="invalid_state")
    return state


def require_reason(reason: str, what: str) -> None:
    if not reason or not reason.strip():
        raise InvalidInput(f"{what} needs a reason", code="reason_required")


def same_or_conflict(existing: ModelVersion, fingerprint: str) -> ModelVersion:
    if existing.fingerprint != fingerprint:
        raise AlreadyExists(
            f"version {existing.version_id} already exists with a different fingerprint "
            f"({existing.fingerprint[:12]}… ≠ {fingerprint[:12]}…)",
            code="version_conflict",
        )
    return existing


def _ensure_track(session: Session, track: str) -> None:
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.exec(insert(Track).values(name=track, created_at=utcnow())
                 .on_conflict_do_nothing(index_elements=["name"]))


def _lock_track(session: Session, track: str) -> Track:
    row = session.exec(select(Track).where(Track.name == track).with_for_update()).first()
    if row is None:
        raise NotFound(f"unknown track {track!r}", code="unknown_track")
    return row


def lock_version(session: Session, version_id: str) -> ModelVersion:
    """The version, re-read with its track locked for the rest of the transaction."""
    version = get_version(session, version_id)
    _lock_track(session, version.track)
    session.refresh(version)  # re-read under the lock
    return version


def commit_swap(session: Session, track: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise ChampionChanged(f"track {track} changed champion concurrently; re-check and "
                              "retry") from None


def _no_previous(champion: ModelVersion, track: str) -> InvalidTransition:
    return InvalidTransition(f"cannot roll back track {track}: {champion.version_id} did not "
                             "replace a champion that can be restored")


def audit_entry(version: ModelVersion, action: Action, from_state: State | None, *, actor: str,
           reason: str, request_id: str | None, forced: bool = False,
           displaced: ModelVersion | None = None,
           gate_report: dict[str, Any] | None = None) -> AuditEntry:
    return AuditEntry(
        track=version.track, version_id=version.version_id, action=action.value,
        from_state=from_state.value if from_state else None, to_state=version.state,
        displaced_version_id=displaced.version_id if displaced else None, actor=actor,
        reason=reason, gate_report=gate_report, forced=forced, request_id=request_id,
        created_at=utcnow(),
    )


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes; they were written in UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=dt.UTC)
