"""``shadow run``: predict every pending (version, day), then settle every day whose outcome landed.

For each track's champion and challengers, the days after the version's ``train_cutoff`` that
have landed and were not yet predicted are predicted in one batch (features by the trainer's own
code, computed once per feature configuration and shared by the versions; one jitted call) and
written to Parquet *before* any outcome is read. A predicted day ``t`` settles once day ``t+1``
has landed: gross, turnover, cost and net go into ``shadow_score`` in one transaction (one
executemany) per version, inserted only if absent — so a (version, day) is scored once, ever.
Days this run predicted are settled from the arrays it has just written; days an earlier run
predicted are read back from Parquet. Only the landed days a run needs are read: from
``WARMUP_DAYS - 1`` days before the first day some version has yet to settle (a feature row
uses that much history and no more).
"""

from __future__ import annotations

import bisect
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, func, select

from registry.config import PodiumConfig
from registry.db import read_session, write_session
from registry.errors import IntegrityFailure
from registry.lifecycle import State
from registry.models import ModelVersion, ShadowError, ShadowScore, utcnow
from scorer.portfolio import quantile_weights, settle_days
from shadow.lease import acquire_lease, new_holder, release_lease
from shadow.predictions import PredictionStore
from trainer import load_model
from trainer.checksums import IntegrityError
from trainer.dataset import open_feed
from trainer.features import WARMUP_DAYS, compute_features

Progress = Callable[[str, int, int], None]  # (version id, done, total)
RENEW_FRACTION = 0.25  # renew the lease once this fraction of it has passed (it cannot lapse)


@dataclass
class VersionOutcome:
    version_id: str
    predicted: int = 0
    settled: int = 0
    error: str | None = None


@dataclass
class ShadowRun:
    ran: bool
    detail: str
    last_landed: dt.date | None = None
    versions: list[VersionOutcome] = field(default_factory=list)

    @property
    def settled(self) -> int:
        return sum(v.settled for v in self.versions)


def shadowed_versions(engine: Engine) -> list[ModelVersion]:
    """Every track's champion and challengers (retired versions are no longer shadowed)."""
    with read_session(engine) as session:
        return list(session.exec(
            select(ModelVersion)
            .where(col(ModelVersion.state).in_([State.CHAMPION.value, State.CHALLENGER.value]))
            .order_by(col(ModelVersion.track), col(ModelVersion.version_id))))


def first_unsettled(engine: Engine, versions: list[ModelVersion],
                    landed: list[dt.date]) -> int:
    """Index in ``landed`` of the first day after its cutoff that some version has not settled
    (``len(landed)`` when there is none)."""
    with read_session(engine) as session:
        settled = {version_id: (count, last) for version_id, count, last in session.exec(
            select(ShadowScore.version_id, func.count(), func.max(ShadowScore.day))
            .where(col(ShadowScore.version_id).in_([v.version_id for v in versions]))
            .group_by(col(ShadowScore.version_id)))}
    first = len(landed)
    for version in versions:
        start = bisect.bisect_right(landed, version.train_cutoff)
        count, last = settled.get(version.version_id, (0, None))
        if last is not None and count == bisect.bisect_right(landed, last) - start:
            start = bisect.bisect_right(landed, last)  # every landed day up to `last` is settled
        first = min(first, start)
    return first


def run_shadow(config: PodiumConfig, engine: Engine, *, holder: str | None = None,
               progress: Progress | None = None) -> ShadowRun:
    """Score everything pending; stand down if another runner holds the lease."""
    holder = holder or new_holder()
    lease_seconds = config.shadow.lease_seconds
    if acquire_lease(engine, holder=holder, seconds=lease_seconds) is None:
        return ShadowRun(False, "another runner holds the shadow lease; nothing done")
    renewed = time.monotonic()
    try:
        feed = open_feed(config.datasets_root, config.market)
        landed = feed.landed_days()
        if not landed:
            return ShadowRun(True, "no market days have landed yet")
        versions = shadowed_versions(engine)
        first = min(first_unsettled(engine, versions, landed), len(landed) - 1)
        returns = feed.returns(start=landed[max(0, first - (WARMUP_DAYS - 1))])
        context = _Context(config, engine, returns, PredictionStore(
            config.artefacts_root / "shadow" / "predictions"))
        outcomes = []
        for done, version in enumerate(versions):
            if progress is not None:
                progress(version.version_id, done, len(versions))
            if time.monotonic() - renewed > RENEW_FRACTION * lease_seconds:
                if acquire_lease(engine, holder=holder, seconds=lease_seconds) is None:
                    return ShadowRun(False, "lost the shadow lease mid-run; stopped",
                                     context.last_day, outcomes)
                renewed = time.monotonic()
            outcomes.append(context.shadow_version(version))
        if progress is not None and versions:
            progress("", len(versions), len(versions))
        return ShadowRun(True, "ok", context.last_day, outcomes)
    finally:
        release_lease(engine, holder=holder)


class _Context:
    """One run's view of the landed market, shared by every version it scores."""

    def __init__(self, config: PodiumConfig, engine: Engine, returns: pd.DataFrame,
                 predictions: PredictionStore) -> None:
        self.config, self.engine, self.predictions = config, engine, predictions
        self.returns = returns
        self.days: list[dt.date] = [d.date() for d in pd.DatetimeIndex(returns.index)]
        self.position = {day: k for k, day in enumerate(self.days)}
        self.assets = [str(a) for a in returns.columns]
        self.matrix = returns.to_numpy(dtype=np.float64)
        self._features: dict[Any, np.ndarray] = {}
        # What this run predicted, by version: (days, scores, weights) as written to Parquet.
        self._written: dict[str, tuple[list[dt.date], np.ndarray, np.ndarray]] = {}

    @property
    def last_day(self) -> dt.date:
        return self.days[-1]

    def shadow_version(self, version: ModelVersion) -> VersionOutcome:
        outcome = VersionOutcome(version.version_id)
        try:
            predicted = self.predictions.predicted_days(version.track, version.version_id)
            fresh = self._predict(version, set(predicted))
            outcome.predicted = len(fresh)
            outcome.settled = self._settle(version, sorted([*predicted, *fresh]))
        except (IntegrityError, IntegrityFailure) as exc:
            outcome.error = str(exc)
            self._record_error(version, "integrity_failure", str(exc))
        return outcome

    def _predict(self, version: ModelVersion, done: set[dt.date]) -> list[dt.date]:
        """Predict every landed day after the cutoff not yet predicted; return those days."""
        pending = [d for d in self.days if d > version.train_cutoff and d not in done]
        if not pending:
            return []
        predictor = load_model(self.config.artefacts_root / version.bundle_path)
        features = self._features_for(predictor.config)
        rows = [self.position[d] for d in pending]
        scores = np.asarray(predictor.predict(features[rows]), dtype=np.float64)
        weights = quantile_weights(scores, self.config.shadow.portfolio.quantile)
        self.predictions.write(version.track, version.version_id, days=pending,
                               assets=self.assets, scores=scores, weights=weights)
        self._written[version.version_id] = (pending, scores.astype(np.float32), weights)
        return pending

    def _features_for(self, train_config) -> np.ndarray:
        key = (train_config.residual_momentum, train_config.xsec_demean)
        if key not in self._features:
            self._features[key] = compute_features(self.matrix, train_config)
        return self._features[key]

    def _settle(self, version: ModelVersion, predicted: list[dt.date]) -> int:
        written = self._written.pop(version.version_id, ([], None, None))
        with read_session(self.engine) as session:
            settled = set(session.exec(select(ShadowScore.day).where(
                ShadowScore.version_id == version.version_id)))
        ready = [d for d in predicted if d not in settled and d in self.position
                 and self.position[d] + 1 < len(self.days)]
        if not ready:
            return 0
        index = {day: k for k, day in enumerate(predicted)}
        first = index[ready[0]]
        previous_day = predicted[first - 1] if first > 0 else None
        wanted = ([previous_day] if previous_day else []) + ready
        scores, weights = self._stored(version, wanted, written)
        if previous_day is not None:
            previous_weights, scores, weights = weights[0], scores[1:], weights[1:]
        else:
            previous_weights = None
        next_rows = [self.position[d] + 1 for d in ready]
        result = settle_days(scores, self.matrix[next_rows], previous_weights,
                             self.config.shadow.portfolio, weights=weights)  # the recorded book
        now = utcnow()
        columns = zip(result.gross.tolist(), result.turnover.tolist(), result.cost.tolist(),
                      result.net.tolist(), result.rank_ic.tolist(),
                      np.isfinite(scores).sum(axis=1).tolist(), strict=True)
        rows = [{"version_id": version.version_id, "day": day, "gross": gross,
                 "turnover": turnover, "cost": cost, "net": net, "rank_ic": _finite(ic),
                 "n_assets": n_assets, "settled_at": now}
                for day, (gross, turnover, cost, net, ic, n_assets)
                in zip(ready, columns, strict=True)]
        with write_session(self.engine) as session:  # all of this version's days, or none
            insert = pg_insert if self.engine.dialect.name == "postgresql" else sqlite_insert
            statement = insert(ShadowScore).on_conflict_do_nothing(
                index_elements=["version_id", "day"])
            session.connection().execute(statement, rows)  # one executemany
            session.commit()
        return len(rows)

    def _stored(self, version: ModelVersion, days: list[dt.date], written: tuple
                ) -> tuple[np.ndarray, np.ndarray]:
        """Scores and weights ``[days, assets]``: this run's from memory, the rest from Parquet."""
        written_days, written_scores, written_weights = written
        row = {day: k for k, day in enumerate(written_days)}
        earlier = [day for day in days if day not in row]
        position = {day: k for k, day in enumerate(earlier)}
        read_scores, read_weights = (self.predictions.read(
            version.track, version.version_id, earlier, self.assets) if earlier else (None, None))
        scores = np.empty((len(days), len(self.assets)))
        weights = np.empty((len(days), len(self.assets)))
        for k, day in enumerate(days):
            if day in row:
                scores[k], weights[k] = written_scores[row[day]], written_weights[row[day]]
            else:
                scores[k], weights[k] = read_scores[position[day]], read_weights[position[day]]
        return scores, weights

    def _record_error(self, version: ModelVersion, code: str, message: str) -> None:
        with write_session(self.engine) as session:
            session.add(ShadowError(version_id=version.version_id, code=code, message=message))
            session.commit()


def _finite(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None
