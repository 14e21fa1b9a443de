"""Retention: what ``registry gc`` may remove from the artefact store, and removing it.

Three kinds of garbage, on a local root and in a bucket alike:

- **staging**: uploads under ``staging/`` never committed, and the bundles training runs left
  on this machine (``runs/<run>/bundle``: a failed run's, a forced retrain's, or the local copy
  of one uploaded to a bucket), older than ``retention.staging_hours``;
- **retired**: bundles of versions retired longer than ``retention.retired_days`` (never a
  champion, never the version a rollback of a track's champion would restore, never a
  version still shadowed);
- **orphaned**: objects under ``models/`` whose version the registry does not know, older than
  ``retention.staging_hours`` (a bundle whose registration was interrupted is younger, and the
  zoo registers it on its next run).

A removed version's bundle is recorded in its ``details`` (``bundle_removed``), so a later load
or rollback says so instead of failing its integrity check. :func:`plan_gc` only looks;
:func:`apply_gc` removes what a plan lists.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from registry.config import PodiumConfig
from registry.db import read_session, write_session
from registry.integrity import ARCHIVE_SUFFIX, STAGING_PREFIX, remove_bundle
from registry.lifecycle import Action, State
from registry.models import AuditEntry, ModelVersion, utcnow
from registry.storage import StoredObject, artefact_store


@dataclass(frozen=True)
class Garbage:
    kind: str  # staging | retired | orphaned
    location: str  # a key in the store, or a local directory
    size: int
    version_id: str | None = None
    local: bool = False  # a directory on this machine, not a key in the store


@dataclass
class GcPlan:
    items: list[Garbage] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)  # retired version id -> why it stays

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)


def plan_gc(config: PodiumConfig, engine: Engine, *, now: dt.datetime | None = None) -> GcPlan:
    """What a ``registry gc`` would remove now (nothing is touched)."""
    now = now or utcnow()
    artefacts = artefact_store(config)
    staging_before = now - dt.timedelta(hours=config.retention.staging_hours)
    retired_before = now - dt.timedelta(days=config.retention.retired_days)
    plan = GcPlan()
    for key, objects in _groups(artefacts.list(STAGING_PREFIX), depth=2).items():
        if max(item.modified for item in objects) < staging_before:
            plan.items.append(Garbage("staging", key, sum(item.size for item in objects)))
    plan.items += _stale_runs(config.artefacts_root / "runs", staging_before)
    with read_session(engine) as session:
        versions = {v.version_id: v for v in session.exec(select(ModelVersion))}
        needed = _rollback_targets(session, versions)
    for key, objects in _groups(artefacts.list("models"), depth=3).items():
        version = versions.get(key.rsplit("/", 1)[-1])
        size = sum(item.size for item in objects)
        if version is None:
            if max(item.modified for item in objects) < staging_before:
                plan.items.append(Garbage("orphaned", key, size))
            continue
        if version.state != State.RETIRED.value or version.bundle_path != key:
            continue
        if version.version_id in needed:
            plan.kept[version.version_id] = needed[version.version_id]
        elif _as_utc(version.updated_at) >= retired_before:
            plan.kept[version.version_id] = "retired too recently"
        else:
            plan.items.append(Garbage("retired", key, size, version.version_id))
    return plan


def apply_gc(config: PodiumConfig, engine: Engine, plan: GcPlan) -> int:
    """Remove what ``plan`` lists; returns the bytes freed. A removed version's record says
    when its bundle went (before the bundle goes: a crash between leaves no silent gap)."""
    artefacts = artefact_store(config)
    removed_at = utcnow().isoformat(timespec="seconds")
    freed = 0
    for item in plan.items:
        if item.version_id is not None:
            _record_removal(engine, item.version_id, removed_at)
        if item.local:
            shutil.rmtree(item.location, ignore_errors=True)
            freed += item.size
        else:
            freed += (artefacts.delete_prefix(item.location) if item.kind == "staging"
                      else remove_bundle(artefacts, item.location))
    return freed


def _record_removal(engine: Engine, version_id: str, removed_at: str) -> None:
    with write_session(engine) as session:
        version = session.get(ModelVersion, version_id)
        if version is None or version.state != State.RETIRED.value:
            raise RuntimeError(f"{version_id} is no longer retired; gc removes nothing of it")
        version.details = {**(version.details or {}), "bundle_removed": removed_at}
        session.add(version)
        session.commit()


def _rollback_targets(session: Session, versions: dict[str, ModelVersion]) -> dict[str, str]:
    """Retired versions a rollback of each track's champion would restore."""
    needed: dict[str, str] = {}
    for version in versions.values():
        if version.state != State.CHAMPION.value:
            continue
        promoted = session.exec(
            select(AuditEntry).where(AuditEntry.version_id == version.version_id,
                                     AuditEntry.action == Action.PROMOTE.value)
            .order_by(col(AuditEntry.id).desc())).first()
        if promoted is not None and promoted.displaced_version_id:
            needed[promoted.displaced_version_id] = (
                f"a rollback of {version.track} would restore it")
    return needed


def _groups(objects: list[StoredObject], *, depth: int) -> dict[str, list[StoredObject]]:
    """Objects grouped by their first ``depth`` key parts (a bundle, a staging upload); a
    bundle's archive in a bucket (``models/<track>/<version_id>.tar``) is its bundle's group."""
    groups: dict[str, list[StoredObject]] = {}
    for item in objects:
        parts = item.key.split("/")
        if len(parts) == depth and parts[-1].endswith(ARCHIVE_SUFFIX):
            parts[-1] = parts[-1].removesuffix(ARCHIVE_SUFFIX)
        elif len(parts) <= depth:
            continue
        groups.setdefault("/".join(parts[:depth]), []).append(item)
    return groups


def _stale_runs(runs: Path, before: dt.datetime) -> list[Garbage]:
    """Training runs' bundles left on this machine (failed, or kept by a forced retrain)."""
    found = []
    for bundle in sorted(runs.glob("*/bundle")) if runs.is_dir() else []:
        files = [path for path in bundle.rglob("*") if path.is_file()]
        newest = max((path.stat().st_mtime for path in files), default=bundle.stat().st_mtime)
        if dt.datetime.fromtimestamp(newest, dt.UTC) < before:
            found.append(Garbage("staging", str(bundle), sum(p.stat().st_size for p in files),
                                 local=True))
    return found


def _as_utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

