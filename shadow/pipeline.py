"""A run's pipeline over one track's versions: predict, write, settle, insert, on four threads.

Every version's model is verified and restored first (:meth:`Pipeline.prepare`), so the run
knows which feature configurations it needs; versions are then scored grouped by configuration
(:meth:`Pipeline.schedule`), the first configuration's features computed on the main thread
while the features thread (:mod:`shadow.view`) ranks the outcomes and computes the others. (Not
while bundles are verified: that is Python holding the GIL, and both ran slower side by side
than one after the other.) Then: version k is predicted, its Parquet write handed to the
predictions thread, and it is settled from memory while the file is written; its score rows go
to the scores thread, which inserts them (one transaction) only once the predictions are on
disk. If they cannot be stored (a full or read-only disk), the version gets a recorded
``storage_error`` and no score, and the others go on. Leaving the pipeline waits for the threads
(dropping what they have not started if :meth:`Pipeline.abandon` was called) and raises the
first failure of an insert. A bundle must match the SHA256SUMS registered with its version, and
every file its SHA256SUMS. An external version (predictions submitted, no model) is settled from
its stored predictions.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import Engine

from registry.db import write_session
from registry.errors import IntegrityFailure
from registry.integrity import fetch_bundle, require_kept
from registry.models import ModelVersion, ShadowError
from registry.storage import ArtefactStore, StorageUnavailable, open_store
from scorer.portfolio import ranked_book
from scorer.settings import PortfolioSettings
from shadow.external import materialise_submissions
from shadow.predictions import PredictionStore
from shadow.scores import ScoreRows, insert_scores
from shadow.settle import Predicted, Settler, VersionOutcome
from shadow.view import MarketView, Universe, rows
from trainer import load_model
from trainer.checksums import IntegrityError
from trainer.features import feature_key

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from trainer.serving import Predictor


def is_external(version: ModelVersion) -> bool:
    """A version whose daily predictions are submitted from outside (no model to call)."""
    return getattr(version, "kind", "builtin") == "external"


@dataclass
class Work:
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


class Pipeline:
    """One run over one track's view (see the module doc); use it as a context manager."""

    def __init__(self, view: MarketView, engine: Engine, predictions: PredictionStore, *,
                 artefacts_root: Path | ArtefactStore, portfolio: PortfolioSettings,
                 bundle_cache: Path | None = None,
                 through: dict[str, dt.date] | None = None, settles_from: int | None = None,
                 universe: Universe | None = None) -> None:
        self.view, self.engine, self.predictions = view, engine, predictions
        self.artefacts_root, self.portfolio = artefacts_root, portfolio
        self.artefacts, self.bundle_cache = open_store(artefacts_root), bundle_cache
        self.universe = universe or Universe()
        self.settler = Settler(view, predictions, engine, portfolio, through or {},
                               self.universe)
        self._settles_from = settles_from  # the first row to settle, when known
        self._files = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-predictions")
        self._scores = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-scores")
        self._inserts: list[Future] = []
        self._abandoned = False

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        drop = self._abandoned or kind is not None
        self.view.cancel()
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

    def prepare(self, version: ModelVersion) -> Work:
        """Which days ``version`` has to predict, and its model, verified and restored (an
        integrity failure is recorded, and the version is left out of this run)."""
        if is_external(version):  # its submitted days that have landed become its predictions
            materialise_submissions(self.engine, self.predictions, version, self.view.days,
                                    artefacts_root=self.artefacts_root,
                                    quantile=self.portfolio.quantile)
        predicted = self.predictions.predicted_days(version.track, version.version_id)
        done, cutoff = set(predicted), version.train_cutoff
        pending = ([] if is_external(version)
                   else [d for d in self.view.days if d > cutoff and d not in done])
        work = Work(version, VersionOutcome(version.version_id), predicted, pending)
        if pending:
            try:
                require_kept(version)
                bundle = fetch_bundle(self.artefacts, version.bundle_path,
                                      expected_digest=version.bundle_digest,
                                      cache_root=self.bundle_cache)
                work.predictor = load_model(bundle, expected_digest=version.bundle_digest)
            except (IntegrityError, IntegrityFailure) as exc:
                self._failed(work.outcome, exc)
                work.failed = True
            except StorageUnavailable as exc:  # the bucket did not answer: next run retries
                self._failed(work.outcome, exc, code=exc.code)
                work.failed = True
        return work

    def schedule(self, work: list[Work]) -> list[Work]:
        """``work`` in the order to score it: what needs no features first, then grouped by
        feature configuration (whose features the view starts computing)."""
        first_of = {}
        for item in work:
            if item.predictor is not None:
                first_of.setdefault(item.feature_key, item.predictor.config)
        keys = list(first_of)
        self.view.prefetch(list(first_of.values()), settles_from=self._settles_from)
        return sorted(work, key=lambda item: -1 if item.feature_key is None
                      else keys.index(item.feature_key))

    def shadow(self, work: Work) -> None:
        """Predict ``work``'s pending days and settle those whose outcome has landed; its
        outcome is complete once the pipeline has closed."""
        if work.failed:
            return
        fresh = self.predict(work)
        fresh.predicted = sorted([*work.predicted, *fresh.days])
        score_rows = None
        try:
            score_rows = self.settler.score_rows(fresh)
        except (IntegrityError, IntegrityFailure) as exc:
            self._failed(work.outcome, exc)
        self._inserts.append(self._scores.submit(self._insert, fresh, score_rows))

    def predict(self, work: Work) -> Predicted:
        """Predict every landed day after the cutoff not yet predicted, and hand the batch to
        the predictions thread. Assets that did not report, or lack the history the features
        need, get no score (and so no weight) that day."""
        version, outcome, pending = work.version, work.outcome, work.pending
        outcome.predicted = len(pending)
        if not pending or work.predictor is None:
            empty = np.empty((0, 0))
            return Predicted(version, outcome, [], empty, empty, empty, None)
        features = self.view.features(work.predictor.config)
        picked = rows([self.view.position[d] for d in pending])
        # The scores as stored (float32 in Parquet): the book and the ranks are those of what
        # is kept, whether a day is settled from memory now or read back by a later run.
        scores = np.asarray(work.predictor.predict(features[picked]),
                            dtype=np.float32).astype(float)
        if not self.view.all_eligible[picked].all():
            scores[~self.view.eligible[picked]] = np.nan
        weights, score_ranks = ranked_book(scores, self.portfolio.quantile)
        written = self._files.submit(self.predictions.write, version.track, version.version_id,
                                     days=pending, assets=self.view.assets, scores=scores,
                                     weights=weights)
        # Settling reads these, not the file.
        return Predicted(version, outcome, pending, scores, weights, score_ranks, written)

    def _insert(self, fresh: Predicted, score_rows: ScoreRows | None) -> None:
        """On the scores thread: insert the version's scores once its predictions are on disk,
        and none if they could not be stored."""
        if fresh.written is not None:
            try:
                fresh.written.result()
            except CancelledError:  # abandoned before the file was written: nothing is stored
                return
            except (OSError, StorageUnavailable) as exc:  # a full disk, an unreachable bucket:
                # this version waits for the next run
                fresh.outcome.predicted = 0
                self._failed(fresh.outcome, exc, code="storage_error",
                             message=f"cannot store predictions: {exc}")
                return
        if score_rows is None:
            return
        with write_session(self.engine) as session:  # all of this version's days, or none
            insert_scores(session.connection(), score_rows)
            session.commit()
        fresh.outcome.settled = len(score_rows)

    def _failed(self, outcome: VersionOutcome, exc: Exception, *,
                code: str = "integrity_failure", message: str | None = None) -> None:
        outcome.error = message or str(exc)
        with write_session(self.engine) as session:
            session.add(ShadowError(version_id=outcome.version_id, code=code,
                                    message=outcome.error))
            session.commit()
