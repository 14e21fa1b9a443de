"""One run's view of a track's landed data, shared by every version it scores.

The view holds the days read (from ``WARMUP_DAYS - 1`` days before the first day some version
has yet to settle), the returns as a ``[days, assets]`` matrix over every asset that reported in
that span, the panel's extra columns on the same grid, which assets may be scored each day (they
reported, and have the history the features need: :func:`trainer.features.eligible`), each
feature configuration's features (computed once a run, on a features thread where it can run
beside the main one) and the ranks of the outcomes. It also says how the universe moved: assets
entering and leaving, and days with too few assets to form the book.
"""

from __future__ import annotations

import datetime as dt
import functools
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from scorer.portfolio import ranks
from trainer.config import TrainConfig
from trainer.features import compute_features, eligible, feature_key
from trainer.sources import DataWindow


@dataclass
class Universe:
    """How the cross-section moved over the days a run settles."""

    entered: int = 0  # assets reporting on a day that did not report on the day before
    left: int = 0  # assets that stopped reporting
    closed_positions: int = 0  # held positions closed because the asset stopped reporting
    skipped_days: dict[dt.date, str] = field(default_factory=dict)  # day -> why


@functools.cache
def features_thread() -> ThreadPoolExecutor:
    """One thread per process for features, kept between runs: a fresh thread's first large
    NumPy arrays come from a fresh malloc arena and run about twice as slow."""
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="shadow-features")


def ranks_from(matrix: np.ndarray, first: int) -> np.ndarray:
    """Ranks of each row of ``matrix`` from row ``first`` on (NaN before)."""
    ranked = np.full(matrix.shape, np.nan)
    ranked[first:] = ranks(matrix[first:])
    return ranked


class MarketView:
    """The landed window of one track's data (see the module doc)."""

    def __init__(self, window: DataWindow, *, min_assets: int = 2) -> None:
        returns = window.returns
        self.days: list[dt.date] = [ts.date() for ts in returns.index]
        self.position = {day: k for k, day in enumerate(self.days)}
        self.assets = [str(a) for a in returns.columns]
        self.matrix = returns.to_numpy(dtype=np.float64)
        self.extras = {name: frame.to_numpy(dtype=np.float64)
                       for name, frame in window.extras.items()}
        self.min_assets = min_assets
        self.eligible = eligible(self.matrix)
        # per day: every asset reported / eligible. Most days are, and the per-version checks
        # over [days, assets] are then skipped: each is a pass over the block that also hands
        # the GIL to the writing threads.
        self.complete = ~np.isnan(self.matrix).any(axis=1)
        self.all_eligible = self.eligible.all(axis=1)
        self._features: dict[tuple, np.ndarray | Future] = {}
        self._return_ranks: np.ndarray | Future | None = None  # from row _ranked_from on
        self._ranked_from = 0

    @property
    def last_day(self) -> dt.date:
        return self.days[-1]

    def prefetch(self, configs: list[TrainConfig], *, settles_from: int | None) -> None:
        """Hand the features thread the outcomes' ranks from row ``settles_from + 1`` (settling
        needs them first), then the features of every configuration but the first."""
        if self._return_ranks is None and settles_from is not None and configs:
            first = min(settles_from + 1, len(self.days) - 1)
            self._return_ranks = features_thread().submit(ranks_from, self.matrix, first)
            self._ranked_from = first
        for train_config in configs[1:]:
            key = feature_key(train_config)
            if key not in self._features:
                self._features[key] = features_thread().submit(self._compute, train_config)

    def features(self, train_config: TrainConfig) -> np.ndarray:
        """Every day's features for ``train_config``: computed once per configuration (here,
        unless the features thread has it under way)."""
        key = feature_key(train_config)
        features = self._features.get(key)
        if features is None:
            features = self._features[key] = self._compute(train_config)
        elif isinstance(features, Future):
            features = self._features[key] = features.result()
        return features

    def _compute(self, train_config: TrainConfig) -> np.ndarray:
        return compute_features(self.matrix, train_config,
                                {name: self.extras[name] for name in train_config.extra_features},
                                eligible_assets=self.eligible)

    def return_ranks(self, rows: slice | list[int]) -> np.ndarray:
        """Ranks of the returns on ``rows``, shared by the versions: every day from the first
        one asked for is ranked once (the warm-up days before never are)."""
        first = rows.start if isinstance(rows, slice) else min(rows)
        if isinstance(self._return_ranks, Future):
            self._return_ranks = self._return_ranks.result()
        if self._return_ranks is None or first < self._ranked_from:
            self._return_ranks = ranks_from(self.matrix, first)
            self._ranked_from = first
        return self._return_ranks[rows]

    def cancel(self) -> None:
        """Drop features not yet started (a running one finishes unread)."""
        for pending in [*self._features.values(), self._return_ranks]:
            if isinstance(pending, Future):
                pending.cancel()

    def universe(self, first: int) -> Universe:
        """Entries, exits and thin days over rows ``first..`` (the days this run settles)."""
        reported = ~np.isnan(self.matrix)
        moved = Universe()
        start = max(first, 1)
        if start < len(self.days):
            now, before = reported[start:], reported[start - 1:-1]
            moved.entered = int((now & ~before).sum())
            moved.left = int((before & ~now).sum())
        counts = self.eligible[first:].sum(axis=1)
        for row in np.flatnonzero(counts < self.min_assets):
            moved.skipped_days[self.days[first + row]] = (
                f"{counts[row]} asset(s) with enough history; the book needs {self.min_assets}")
        return moved


def rows(indices: list[int]) -> slice | list[int]:
    """``indices`` as a slice when they are consecutive (a view, not a copy, of the rows)."""
    if indices and indices == list(range(indices[0], indices[0] + len(indices))):
        return slice(indices[0], indices[0] + len(indices))
    return indices
