"""``shadow run``: predict every pending (version, day), then settle every day whose outcome landed.

For each track's champion and challengers, the days after the version's ``train_cutoff`` that
have landed and were not yet predicted are predicted in one batch (features by the trainer's own
code, computed once per feature configuration and shared by the versions; one jitted call), from
what was known on each day, and written to Parquet; a version's scores are stored only once its
predictions are on disk. A predicted day ``t`` settles once day ``t+1`` has landed: gross,
turnover, cost and net go into ``shadow_score`` in one transaction (one executemany) per
version, inserted only if absent — so a (version, day) is scored once, ever.
Days this run predicted are settled from the arrays it has just written; days an earlier run
predicted are read back from Parquet. Only the landed days a run needs are read: from
``WARMUP_DAYS - 1`` days before the first day some version has yet to settle (a feature row
uses that much history and no more).

A run is a pipeline over four threads (see :class:`_Context`): the main thread predicts and
settles one version after another, grouped by feature configuration, while the features of
the next configuration are computed, and each version's predictions are written and, after
them, its scores inserted. A bundle must match the SHA256SUMS registered with its version,
and every file its SHA256SUMS.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
import time
from collections.abc import Callable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlmodel import col, func, select

from registry.config import PodiumConfig
from registry.db import read_session, write_session
from registry.errors import IntegrityFailure
from registry.lifecycle import State
from registry.models import ModelVersion, ShadowError, ShadowScore, utcnow
from scorer.portfolio import ranked_book, ranks, settle_days
from shadow.lease import acquire_lease, new_holder, release_lease
from shadow.predictions import PredictionStore
from shadow.scores import ScoreRows, insert_scores
from trainer import load_model
from trainer.checksums import IntegrityError
from trainer.compilation_cache import enable_compilation_cache
from trainer.config import TrainConfig
from trainer.dataset import open_feed
from trainer.features import WARMUP_DAYS, compute_features, feature_key

if TYPE_CHECKING:  # pragma: no cover
    from trainer.serving import Predictor

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


def settled_so_far(engine: Engine, versions: list[ModelVersion]
                   ) -> dict[str, tuple[int, dt.date]]:
    """``{version id: (days settled, last day settled)}`` for the versions with any score."""
    with read_session(engine) as session:
        return {version_id: (count, last) for version_id, count, last in session.exec(
            select(ShadowScore.version_id, func.count(), func.max(ShadowScore.day))
            .where(col(ShadowScore.version_id).in_([v.version_id for v in versions]))
            .group_by(col(ShadowScore.version_id)))}


def settled_through(versions: list[ModelVersion], landed: list[dt.date],
                    settled: dict[str, tuple[int, dt.date]]) -> dict[str, dt.date]:
    """The day through which each version has settled every landed day after its cutoff (its
    cutoff when it has settled none); versions with gaps are left out."""
    through = {}
    for version in versions:
        count, last = settled.get(version.version_id, (0, None))
        if last is None:
            through[version.version_id] = version.train_cutoff
        elif count == (bisect.bisect_right(landed, last)
                       - bisect.bisect_right(landed, version.train_cutoff)):
            through[version.version_id] = last
    return through


def first_unsettled(versions: list[ModelVersion], landed: list[dt.date],
                    through: dict[str, dt.date]) -> int:
    """Index in ``landed`` of the first day after its cutoff that some version has not settled
    (``len(landed)`` when there is none)."""
    first = len(landed)
    for version in versions:
        last = through.get(version.version_id, version.train_cutoff)
        first = min(first, bisect.bisect_right(landed, last))
    return first


def run_shadow(config: PodiumConfig, engine: Engine, *, holder: str | None = None,
               progress: Progress | None = None) -> ShadowRun:
    """Score everything pending; stand down if another runner holds the lease."""
    enable_compilation_cache(config.artefacts_root / "cache" / "jax")
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
        through = settled_through(versions, landed, settled_so_far(engine, versions))
        first = min(first_unsettled(versions, landed, through), len(landed) - 1)
        start = max(0, first - (WARMUP_DAYS - 1))
        returns = feed.returns(start=landed[start], landed=landed)

        def keep_lease() -> bool:
            nonlocal renewed
            if time.monotonic() - renewed > RENEW_FRACTION * lease_seconds:
                if acquire_lease(engine, holder=holder, seconds=lease_seconds) is None:
                    return False
                renewed = time.monotonic()
            return True

        started: list[VersionOutcome] = []
        with _Context(config, engine, returns, PredictionStore(
                config.artefacts_root / "shadow" / "predictions"), through,
                      settles_from=first - start) as context:
            work: list[_Work] = []
            for version in versions:  # which days, and each model verified and restored
                if not keep_lease():
                    context.abandon()
                    return ShadowRun(False, "lost the shadow lease mid-run; stopped",
                                     context.last_day, started)
                work.append(context.prepare(version))
            for done, item in enumerate(context.schedule(work)):
                if progress is not None:
                    progress(item.version.version_id, done, len(work))
                if not keep_lease():
                    context.abandon()
                    return ShadowRun(False, "lost the shadow lease mid-run; stopped",
                                     context.last_day, started)
                started.append(item.outcome)
                context.shadow(item)
        if progress is not None and versions:
            progress("", len(versions), len(versions))
        return ShadowRun(True, "ok", context.last_day, [item.outcome for item in work])
    finally:
        release_lease(engine, holder=holder)


@dataclass
class _Work:
    """A version's work in this run: the days it predicted before, those still to predict, and
    its verified model (None when it has nothing to predict, or failed verification)."""

    version: ModelVersion
    outcome: VersionOutcome
    predicted: list[dt.date]
    pending: list[dt.date]
    predictor: Predictor | None = None
    failed: bool = False

    @property
    def feature_key(self) -> tuple | None:
        return None if self.predictor is None else feature_key(self.predictor.config)


@dataclass
class _Predicted:
    """A version's fresh predictions (days, scores, weights, as handed to the writer; the
    scores' ranks, from the sort that built the book) and every day it has predicted so far."""

    version: ModelVersion
    outcome: VersionOutcome
    days: list[dt.date]
    scores: np.ndarray
    weights: np.ndarray
    score_ranks: np.ndarray
    written: Future | None  # the Parquet write; inserting the scores waits for it
    predicted: list[dt.date] = field(default_factory=list)


class _Context:
    """One run's view of the landed market, shared by every version it scores.

    Every version's model is verified and restored first (:meth:`prepare`), so the run knows
    which feature configurations it needs; versions are then scored grouped by configuration
    (:meth:`schedule`), the first configuration's features computed on the main thread while
    the features thread ranks the outcomes and computes the other configurations' features.
    (Not while bundles are verified: that is Python holding the GIL, and both ran slower
    side by side than one after the other.) Then a pipeline: version k is predicted, its
    Parquet write handed to the predictions thread, and it is settled from memory while the
    file is written; its score rows go to the scores thread, which inserts them (one
    transaction) only once the predictions are on disk. If they cannot be stored (a full or
    read-only disk), the version gets a recorded ``storage_error`` and no score, and the others
    go on. So the main thread computes version k+1 while version k's file and, after it, its
    scores are written. Leaving the context waits for the threads (dropping what they have not
    started if :meth:`abandon` was called) and raises the first failure of an insert.
    """

    def __init__(self, config: PodiumConfig, engine: Engine, returns: pd.DataFrame,
                 predictions: PredictionStore, through: dict[str, dt.date] | None = None,
                 *, settles_from: int | None = None) -> None:
        self.config, self.engine, self.predictions = config, engine, predictions
        self.returns = returns
        self.days: list[dt.date] = [d.date() for d in pd.DatetimeIndex(returns.index)]
        self.position = {day: k for k, day in enumerate(self.days)}
        self.assets = [str(a) for a in returns.columns]
        self.matrix = returns.to_numpy(dtype=np.float64)
        self._through = through or {}
        self._features: dict[tuple, np.ndarray | Future] = {}
        self._return_ranks: np.ndarray | Future | None = None  # from row _ranked_from on
        self._ranked_from = 0
        # the first day to settle (row of matrix), when known: its outcome's ranks are computed
        # on the features thread, after the first features
        self._settles_from = settles_from
        self._files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-predictions")
        self._scores = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-scores")
        self._inserts: list[Future] = []
        self._abandoned = False

    def __enter__(self) -> _Context:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        drop = self._abandoned or kind is not None
        for features in [*self._features.values(), self._return_ranks]:
            if isinstance(features, Future):
                features.cancel()  # not needed after all (a running one finishes unread)
        try:
            self._scores.shutdown(wait=False, cancel_futures=drop)
        finally:
            self._files.shutdown(wait=True, cancel_futures=drop)
            self._scores.shutdown(wait=True)
        if kind is None:
            for inserted in self._inserts:
                if not inserted.cancelled():  # abandoned before the thread reached it
                    inserted.result()  # a failed insert raises here

    def abandon(self) -> None:
        """Score nothing more (the lease is lost): writes not yet started are dropped."""
        self._abandoned = True

    @property
    def last_day(self) -> dt.date:
        return self.days[-1]

    def prepare(self, version: ModelVersion) -> _Work:
        """Which days ``version`` has to predict, and its model, verified and restored (an
        integrity failure is recorded, and the version is left out of this run)."""
        predicted = self.predictions.predicted_days(version.track, version.version_id)
        done, cutoff = set(predicted), version.train_cutoff
        pending = [d for d in self.days if d > cutoff and d not in done]
        work = _Work(version, VersionOutcome(version.version_id), predicted, pending)
        if pending:
            try:
                work.predictor = load_model(self.config.artefacts_root / version.bundle_path,
                                            expected_digest=version.bundle_digest)
            except (IntegrityError, IntegrityFailure) as exc:
                self._failed(work.outcome, exc)
                work.failed = True
        return work

    def schedule(self, work: list[_Work]) -> list[_Work]:
        """``work`` in the order to score it: what needs no features first, then grouped by
        feature configuration. The features thread is handed the outcomes' ranks, which
        settling needs first, then every configuration's features but the first one's."""
        first_of: dict[tuple, TrainConfig] = {}
        for item in work:
            if item.predictor is not None:
                first_of.setdefault(item.feature_key, item.predictor.config)
        keys = list(first_of)
        if self._return_ranks is None and self._settles_from is not None and keys:
            first = min(self._settles_from + 1, len(self.days) - 1)
            self._return_ranks = _features_thread().submit(_ranks_from, self.matrix, first)
            self._ranked_from = first
        for key in keys[1:]:
            if key not in self._features:
                self._features[key] = _features_thread().submit(compute_features, self.matrix,
                                                                first_of[key])
        return sorted(work, key=lambda item: -1 if item.feature_key is None
                      else keys.index(item.feature_key))

    def shadow(self, work: _Work) -> None:
        """Predict ``work``'s pending days and settle those whose outcome has landed; its
        outcome is complete once the context has closed."""
        if work.failed:
            return
        fresh = self._predict(work)
        fresh.predicted = sorted([*work.predicted, *fresh.days])
        rows = None
        try:
            rows = self._settle(fresh)
        except (IntegrityError, IntegrityFailure) as exc:
            self._failed(work.outcome, exc)
        self._inserts.append(self._scores.submit(self._insert, fresh, rows))

    def _predict(self, work: _Work) -> _Predicted:
        """Predict every landed day after the cutoff not yet predicted, and hand the batch to
        the predictions thread."""
        version, outcome, pending = work.version, work.outcome, work.pending
        outcome.predicted = len(pending)
        if not pending or work.predictor is None:
            empty = np.empty((0, 0))
            return _Predicted(version, outcome, [], empty, empty, empty, None)
        features = self._features_for(work.predictor.config)
        rows = _rows([self.position[d] for d in pending])
        # The scores as stored (float32 in Parquet): the book and the ranks are those of what
        # is kept, whether a day is settled from memory now or read back by a later run.
        scores = np.asarray(work.predictor.predict(features[rows]),
                            dtype=np.float32).astype(float)
        weights, score_ranks = ranked_book(scores, self.config.shadow.portfolio.quantile)
        written = self._files.submit(self.predictions.write, version.track, version.version_id,
                                     days=pending, assets=self.assets, scores=scores,
                                     weights=weights)
        # Settling reads these, not the file.
        return _Predicted(version, outcome, pending, scores, weights, score_ranks, written)

    def _features_for(self, train_config: TrainConfig) -> np.ndarray:
        """Every landed day's features for ``train_config``: computed once per feature
        configuration (here, unless the features thread has it under way)."""
        key = feature_key(train_config)
        features = self._features.get(key)
        if features is None:
            features = self._features[key] = compute_features(self.matrix, train_config)
        elif isinstance(features, Future):
            features = self._features[key] = features.result()
        return features

    def _settle(self, fresh: _Predicted) -> ScoreRows | None:
        """The score rows of ``fresh``'s predicted days whose outcome has landed."""
        version, predicted = fresh.version, fresh.predicted
        through = self._through.get(version.version_id)
        if through is not None:  # every landed day after the cutoff through `through`
            ready = [d for d in predicted if d > through]
        else:  # a version with gaps: ask which days
            with read_session(self.engine) as session:
                settled = set(session.exec(select(ShadowScore.day).where(
                    ShadowScore.version_id == version.version_id)))
            ready = [d for d in predicted if d not in settled]
        ready = [d for d in ready if d in self.position and self.position[d] + 1 < len(self.days)]
        if not ready:
            return None
        index = {day: k for k, day in enumerate(predicted)}
        first = index[ready[0]]
        previous_day = predicted[first - 1] if first > 0 else None
        wanted = ([previous_day] if previous_day else []) + ready
        scores, weights, score_ranks = self._stored(version, wanted, fresh)
        if previous_day is not None:
            previous_weights = weights[0]
            scores, weights, score_ranks = scores[1:], weights[1:], score_ranks[1:]
        else:
            previous_weights = None
        next_rows = _rows([self.position[d] + 1 for d in ready])
        result = settle_days(scores, self.matrix[next_rows], previous_weights,
                             self.config.shadow.portfolio, weights=weights,  # the recorded book
                             score_ranks=score_ranks,
                             return_ranks=self._ranks_of_returns(next_rows))
        return ScoreRows(version.version_id, utcnow(), ready, result.gross.tolist(),
                         result.turnover.tolist(), result.cost.tolist(), result.net.tolist(),
                         [ic if ic == ic else None for ic in result.rank_ic.tolist()],  # NaN
                         np.isfinite(scores).sum(axis=1).tolist())

    def _insert(self, fresh: _Predicted, rows: ScoreRows | None) -> None:
        """On the scores thread: insert the version's scores once its predictions are on disk,
        and none if they could not be stored."""
        if fresh.written is not None:
            try:
                fresh.written.result()
            except CancelledError:  # abandoned before the file was written: nothing is stored
                return
            except OSError as exc:  # a full or read-only disk: this version waits for the next run
                fresh.outcome.predicted = 0
                self._failed(fresh.outcome, exc, code="storage_error",
                             message=f"cannot store predictions: {exc}")
                return
        if rows is None:
            return
        with write_session(self.engine) as session:  # all of this version's days, or none
            insert_scores(session.connection(), rows)
            session.commit()
        fresh.outcome.settled = len(rows)

    def _ranks_of_returns(self, rows: slice | list[int]) -> np.ndarray:
        """Ranks of the returns on ``rows`` (of :attr:`matrix`), shared by the versions: every
        day from the first one asked for is ranked once (the warm-up days before never are)."""
        first = rows.start if isinstance(rows, slice) else min(rows)
        if isinstance(self._return_ranks, Future):
            self._return_ranks = self._return_ranks.result()
        if self._return_ranks is None or first < self._ranked_from:
            self._return_ranks = _ranks_from(self.matrix, first)
            self._ranked_from = first
        return self._return_ranks[rows]

    def _stored(self, version: ModelVersion, days: list[dt.date], fresh: _Predicted
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, weights and the scores' ranks ``[days, assets]``: this run's from memory, the
        rest from Parquet."""
        row = {day: k for k, day in enumerate(fresh.days)}
        earlier = [day for day in days if day not in row]
        if not earlier:  # the usual case: all of them predicted by this run
            rows = _rows([row[day] for day in days])
            return fresh.scores[rows], fresh.weights[rows], fresh.score_ranks[rows]
        read_scores, read_weights = self.predictions.read(
            version.track, version.version_id, earlier, self.assets)
        read_ranks = ranks(read_scores)
        position = {day: k for k, day in enumerate(earlier)}
        shape = (len(days), len(self.assets))
        scores, weights, score_ranks = np.empty(shape), np.empty(shape), np.empty(shape)
        for k, day in enumerate(days):
            if day in row:
                r = row[day]
                scores[k], weights[k], score_ranks[k] = (fresh.scores[r], fresh.weights[r],
                                                         fresh.score_ranks[r])
            else:
                r = position[day]
                scores[k], weights[k], score_ranks[k] = (read_scores[r], read_weights[r],
                                                         read_ranks[r])
        return scores, weights, score_ranks

    def _failed(self, outcome: VersionOutcome, exc: Exception, *,
                code: str = "integrity_failure", message: str | None = None) -> None:
        outcome.error = message or str(exc)
        with write_session(self.engine) as session:
            session.add(ShadowError(version_id=outcome.version_id, code=code,
                                    message=outcome.error))
            session.commit()


@functools.cache
def _features_thread() -> ThreadPoolExecutor:
    """One thread per process for features, kept between runs: a fresh thread's first large
    NumPy arrays come from a fresh malloc arena and run about twice as slow."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-features")


def _ranks_from(matrix: np.ndarray, first: int) -> np.ndarray:
    """Ranks of each row of ``matrix`` from row ``first`` on (NaN before)."""
    ranked = np.full(matrix.shape, np.nan)
    ranked[first:] = ranks(matrix[first:])
    return ranked


def _rows(indices: list[int]) -> slice | list[int]:
    """``indices`` as a slice when they are consecutive (a view, not a copy, of the rows)."""
    if indices and indices == list(range(indices[0], indices[0] + len(indices))):
        return slice(indices[0], indices[0] + len(indices))
    return indices
