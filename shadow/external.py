"""External versions in shadow: settling their submitted predictions.

Once a submitted day ``D`` (see :mod:`registry.submissions`) has landed, the runner turns the
submission into the book formed on the landed day before ``D`` and held over ``D``
(:func:`materialise_submissions`), written to the prediction store exactly as a built-in
version's predictions are, and settles it by the same code: portfolio, cost, net, gate.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
from sqlalchemy import Engine
from sqlmodel import select

from registry.db import read_session
from registry.models import ModelVersion, PredictionSubmission
from registry.storage import ArtefactStore
from registry.submissions import submissions_root
from scorer.portfolio import ranked_book
from shadow.predictions import PredictionStore


def materialise_submissions(engine: Engine, predictions: PredictionStore, version: ModelVersion,
                            days: list[dt.date], *, artefacts_root: Path | ArtefactStore,
                            quantile: float
                            ) -> list[dt.date]:
    """Write each submitted day that has landed (in ``days``) as the prediction of the landed
    day before it (on or before the cutoff: not scored), once; return every day predicted so
    far."""
    with read_session(engine) as session:
        submitted = list(session.exec(select(PredictionSubmission.day).where(
            PredictionSubmission.version_id == version.version_id)))
    predicted = set(predictions.predicted_days(version.track, version.version_id))
    position = {day: k for k, day in enumerate(days)}
    files = submissions_root(artefacts_root)
    for day in sorted(submitted):
        k = position.get(day, 0)  # 0: not landed yet, or before this run's window
        if k == 0 or days[k - 1] <= version.train_cutoff or days[k - 1] in predicted:
            continue
        assets, scores = files.read(version.track, version.version_id, day)
        kept = np.asarray(scores, dtype=np.float32).astype(float)[None, :]  # as stored
        weights, _ = ranked_book(kept, quantile)
        predictions.write(version.track, version.version_id, days=[days[k - 1]], assets=assets,
                          scores=kept, weights=weights)
        predicted.add(days[k - 1])
    return sorted(predicted)
