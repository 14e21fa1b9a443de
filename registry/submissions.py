"""An external version's daily predictions: checked, then stored whole or not at all.

An external version has no model to call: its owner submits, for a day ``D`` whose returns have
not landed yet, a score per asset (:func:`submit_predictions`). When it arrived is recorded, and
a day whose returns have landed or that is settled is refused: no look-ahead, ever. The
submission is kept as Parquet (:class:`SubmittedPredictions`) until the shadow runner, once
``D`` has landed, settles it like a built-in version's predictions
(:mod:`shadow.external`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from registry import store
from registry.api.prediction_bodies import MAX_ASSET_NAME, MAX_ASSETS
from registry.config import PodiumConfig
from registry.db import read_session, write_session
from registry.errors import AlreadyExists, InvalidInput, InvalidTransition, LookAhead
from registry.ids import canonical_json, validate_slug, validate_version_id
from registry.landing import landed_days, track_source
from registry.lifecycle import State
from registry.models import ModelVersion, PredictionSubmission, ShadowScore, utcnow
from registry.storage import ArtefactStore, artefact_store, open_store

SHOWN = 5  # offending assets named in an error


@dataclass(frozen=True)
class Accepted:
    submission: PredictionSubmission
    created: bool  # False: the same predictions were already stored
    unknown_assets: list[str]  # ignored (not in the track's universe); the first few


def track_universe(config: PodiumConfig, track: str, landed: list[dt.date]) -> set[str]:
    """The assets reporting on ``track``'s last landed day (none before any day has landed)."""
    if not landed:
        return set()
    last = track_source(config, track).window(start=landed[-1], end=landed[-1]).returns
    return {str(asset) for asset in last.columns[last.notna().any(axis=0).to_numpy()]}


def submissions_root(artefacts_root: Path | ArtefactStore) -> SubmittedPredictions:
    return SubmittedPredictions(artefacts_root, "shadow/submissions")


def submit_predictions(engine: Engine, config: PodiumConfig, *, version_id: str, day: dt.date,
                       assets: Sequence[str], scores: np.ndarray, actor: str) -> Accepted:
    """Check and store one day of an external version's predictions (all or nothing)."""
    arrived_at = utcnow()
    scores = _checked(assets, scores)
    digest = hashlib.sha256(canonical_json(sorted(zip(assets, scores.tolist(), strict=True)))
                            .encode("utf-8")).hexdigest()
    with read_session(engine) as session:
        version = store.get_version(session, version_id)
        _check_version(version, day)
        existing = session.get(PredictionSubmission, (version_id, day))
        settled = session.exec(select(func.max(ShadowScore.day)).where(
            ShadowScore.version_id == version_id)).one()
    landed = landed_days(config, version.track)
    universe = track_universe(config, version.track, landed)
    known = np.array([asset in universe for asset in assets], dtype=bool)
    unknown = [a for a, k in zip(assets, known, strict=True) if not k][:SHOWN]
    if existing is not None:  # a retry of what was stored answers the same, even once landed
        return Accepted(_same(existing, digest), False, unknown)
    _check_day(version, day, landed, settled)
    if not known.any():
        raise InvalidInput(f"none of the {len(assets)} assets is in track {version.track}'s "
                           f"universe (e.g. {_few(list(assets))})", code="no_known_assets")
    row = PredictionSubmission(version_id=version_id, day=day, arrived_at=arrived_at,
                               n_assets=int(known.sum()), n_unknown=int((~known).sum()),
                               digest=digest, actor=actor)
    files = submissions_root(artefact_store(config))
    with write_session(engine) as session:
        existing = session.get(PredictionSubmission, (version_id, day))
        if existing is not None:
            return Accepted(_same(existing, digest), False, unknown)
        session.add(row)
        try:
            session.flush()  # the (version, day) is ours from here: the file is written once
        except IntegrityError:
            session.rollback()
            return Accepted(_same(session.get(PredictionSubmission, (version_id, day)), digest),
                            False, unknown)
        written = files.write(version.track, version_id, day=day,
                              assets=[a for a, k in zip(assets, known, strict=True) if k],
                              scores=scores[known], arrived_at=arrived_at)
        try:
            _check_day(version, day, landed_days(config, version.track), settled)  # landed since?
            session.commit()
        except BaseException:
            files.delete(written)  # before the rollback lets another writer in
            raise
        session.refresh(row)
    return Accepted(row, True, unknown)


def list_submissions(engine: Engine, version_id: str) -> list[PredictionSubmission]:
    with read_session(engine) as session:
        store.get_version(session, version_id)
        return list(session.exec(select(PredictionSubmission)
                                 .where(PredictionSubmission.version_id == version_id)
                                 .order_by(PredictionSubmission.day)))


def _checked(assets: Sequence[str], scores: np.ndarray) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if len(assets) == 0:
        raise InvalidInput("no predictions: send at least one asset and its score",
                           code="no_predictions")
    if len(assets) > MAX_ASSETS:
        raise InvalidInput(f"{len(assets)} assets; at most {MAX_ASSETS} a day",
                           code="too_many_assets")
    if scores.shape != (len(assets),):
        raise InvalidInput("one score per asset is expected", code="invalid_predictions")
    bad = [a for a in assets if not isinstance(a, str) or not a or len(a) > MAX_ASSET_NAME
           or "\x00" in a]
    if bad:
        raise InvalidInput(f"asset names must be 1-{MAX_ASSET_NAME} characters: "
                           f"{_few(bad)}", code="invalid_asset")
    seen: set[str] = set()
    duplicates = [a for a in assets if a in seen or seen.add(a)]
    if duplicates:
        raise InvalidInput(f"{len(duplicates)} duplicate asset(s): {_few(duplicates)}; send "
                           "one score per asset", code="duplicate_assets")
    finite = np.isfinite(scores)
    if not finite.all():
        offending = [a for a, ok in zip(assets, finite, strict=True) if not ok]
        raise InvalidInput(f"{len(offending)} non-finite score(s) (NaN or infinite), e.g. for "
                           f"{_few(offending)}; leave an asset out instead",
                           code="non_finite_score")
    return scores


def _check_version(version: ModelVersion, day: dt.date) -> None:
    if version.kind != "external":
        raise InvalidTransition(f"{version.version_id} is a built-in version: the shadow runner "
                                "predicts for it; only external versions submit predictions",
                                code="not_external")
    if version.state == State.RETIRED.value:
        raise InvalidTransition(f"{version.version_id} is retired: it is no longer scored",
                                code="version_retired")
    if day <= version.train_cutoff:
        raise InvalidInput(f"day {day} is not after {version.version_id}'s train cutoff "
                           f"{version.train_cutoff}: predictions count only out of sample",
                           code="day_not_after_cutoff")


def _check_day(version: ModelVersion, day: dt.date, landed: list[dt.date],
               settled: dt.date | None) -> None:
    """No look-ahead: refuse a day that is settled, or whose returns (or later ones) landed."""
    if settled is not None and day <= settled:
        raise LookAhead(f"day {day} is already settled for {version.version_id} (through "
                        f"{settled}): predictions must arrive before their outcome",
                        code="day_settled")
    if landed and day <= landed[-1]:
        what = (f"returns for {day} have already landed" if day in landed else
                f"{day} is in the past (returns through {landed[-1]} have landed)")
        raise LookAhead(f"{what}: predictions for a day must arrive before its returns land",
                        code="outcome_landed")


def _same(existing: PredictionSubmission | None, digest: str) -> PredictionSubmission:
    if existing is None:  # pragma: no cover (a row that was there a moment ago)
        raise AlreadyExists("predictions for this day are being stored by another request",
                            code="predictions_exist")
    if existing.digest != digest:
        raise AlreadyExists(f"predictions for {existing.day} were already submitted for "
                            f"{existing.version_id} at {store.as_utc(existing.arrived_at)} "
                            "with other scores; a day is submitted once",
                            code="predictions_exist")
    return existing


def _few(items: list) -> str:
    shown = ", ".join(repr(i) for i in items[:SHOWN])
    return shown + (f" and {len(items) - SHOWN} more" if len(items) > SHOWN else "")


SUBMITTED_SCHEMA = pa.schema([("day", pa.date32()), ("asset", pa.string()),
                              ("score", pa.float64()),
                              ("arrived_at", pa.timestamp("us", tz="UTC"))])


class SubmittedPredictions:
    """An external version's submitted days as Parquet:
    ``shadow/submissions/<track>/<version_id>/<YYYYMMDD>.parquet``, one file per day whose
    returns the scores forecast (columns day, asset, score, arrived_at), written as one whole
    object and never rewritten."""

    def __init__(self, root: Path | ArtefactStore, prefix: str = "") -> None:
        self.store, self.prefix = open_store(root), prefix.strip("/")

    def key(self, track: str, version_id: str, day: dt.date) -> str:
        parts = [validate_slug(track, what="track"), validate_version_id(version_id),
                 f"{day:%Y%m%d}.parquet"]
        return "/".join([self.prefix, *parts] if self.prefix else parts)

    def write(self, track: str, version_id: str, *, day: dt.date, assets: Sequence[str],
              scores: np.ndarray, arrived_at: dt.datetime) -> str:
        """Returns the key written."""
        target = self.key(track, version_id, day)
        table = pa.table({
            "day": pa.array([day] * len(assets), pa.date32()),
            "asset": pa.array(list(assets), pa.string()),
            "score": pa.array(np.asarray(scores, dtype=np.float64)),
            "arrived_at": pa.array([arrived_at] * len(assets), pa.timestamp("us", tz="UTC")),
        }, schema=SUBMITTED_SCHEMA)
        self.store.put_table(target, table)
        return target

    def delete(self, key: str) -> None:
        self.store.delete(key)

    def read(self, track: str, version_id: str, day: dt.date) -> tuple[list[str], np.ndarray]:
        """``(assets, scores)`` submitted for ``day``."""
        table = pq.read_table(self.store.parquet_source(self.key(track, version_id, day)),
                              columns=["asset", "score"])
        return table.column("asset").to_pylist(), table.column("score").to_numpy()
