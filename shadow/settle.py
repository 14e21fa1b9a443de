"""Settling a version's predicted days: the book on day ``t`` earns the returns of ``t+1``.

Days this run predicted are settled from the arrays it has just written; days an earlier run
predicted (or an external model submitted) are read back from Parquet. A held asset that stops
reporting is closed at its last price (a return of 0 on the day it is missing) and its weight
goes to 0 the next day, so closing it is traded and costed, never dropped. Days with too few
assets to form the book are skipped (the view says why).
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import Engine
from sqlmodel import select

from registry.db import read_session
from registry.models import ModelVersion, ShadowScore, utcnow
from scorer.portfolio import ranks, settle_days
from scorer.settings import PortfolioSettings
from shadow.predictions import PredictionStore
from shadow.scores import ScoreRows
from shadow.view import MarketView, Universe, rows


@dataclass
class VersionOutcome:
    version_id: str
    predicted: int = 0
    settled: int = 0
    error: str | None = None


@dataclass
class Predicted:
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


class Settler:
    """Turns predicted days into score rows for one run's view."""

    def __init__(self, view: MarketView, predictions: PredictionStore, engine: Engine,
                 portfolio: PortfolioSettings, through: dict[str, dt.date],
                 universe: Universe) -> None:
        self.view, self.predictions, self.engine = view, predictions, engine
        self.portfolio, self.through, self.universe = portfolio, through, universe

    def score_rows(self, fresh: Predicted) -> ScoreRows | None:
        """The score rows of ``fresh``'s predicted days whose outcome has landed."""
        view, version, predicted = self.view, fresh.version, fresh.predicted
        through = self.through.get(version.version_id)
        if through is not None:  # every landed day after the cutoff through `through`
            ready = [d for d in predicted if d > through]
        else:  # a version with gaps: ask which days
            with read_session(self.engine) as session:
                settled = set(session.exec(select(ShadowScore.day).where(
                    ShadowScore.version_id == version.version_id)))
            ready = [d for d in predicted if d not in settled]
        ready = [d for d in ready if d in view.position
                 and view.position[d] + 1 < len(view.days)
                 and d not in self.universe.skipped_days]
        if not ready:
            return None
        index = {day: k for k, day in enumerate(predicted)}
        first = index[ready[0]]
        previous_day = predicted[first - 1] if first > 0 else None
        wanted = ([previous_day] if previous_day else []) + ready
        scores, weights, score_ranks = self.stored(version, wanted, fresh)
        if previous_day is not None:
            previous_weights = weights[0]
            scores, weights, score_ranks = scores[1:], weights[1:], score_ranks[1:]
        else:
            previous_weights = None
        next_rows = rows([view.position[d] + 1 for d in ready])
        outcomes = view.matrix[next_rows]
        if not view.complete[next_rows].all():
            closed = (weights != 0) & np.isnan(outcomes)
            if closed.any():  # the asset stopped reporting: closed at its last price
                outcomes = np.where(closed, 0.0, outcomes)
                self.universe.closed_positions += int(closed.sum())
        result = settle_days(scores, outcomes, previous_weights, self.portfolio,
                             weights=weights,  # the recorded book
                             score_ranks=score_ranks,
                             return_ranks=view.return_ranks(next_rows))
        return ScoreRows(version.version_id, utcnow(), ready, result.gross.tolist(),
                         result.turnover.tolist(), result.cost.tolist(), result.net.tolist(),
                         [ic if ic == ic else None for ic in result.rank_ic.tolist()],  # NaN
                         np.isfinite(scores).sum(axis=1).tolist())

    def stored(self, version: ModelVersion, days: list[dt.date], fresh: Predicted
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores, weights and the scores' ranks ``[days, assets]``: this run's from memory,
        the rest from Parquet."""
        row = {day: k for k, day in enumerate(fresh.days)}
        earlier = [day for day in days if day not in row]
        if not earlier:  # the usual case: all of them predicted by this run
            picked = rows([row[day] for day in days])
            return fresh.scores[picked], fresh.weights[picked], fresh.score_ranks[picked]
        assets = self.view.assets
        read_scores, read_weights = self.predictions.read(version.track, version.version_id,
                                                          earlier, assets)
        read_ranks = ranks(read_scores)
        position = {day: k for k, day in enumerate(earlier)}
        shape = (len(days), len(assets))
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
