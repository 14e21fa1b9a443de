"""From scores to a dollar-neutral long/short book, and what that book earned and cost.

Shapes: scores and returns are [days, assets] (or [assets] for one day); a non-finite score means
the asset is absent that day and gets no weight. The asset axis must be aligned across days.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from scorer.costs import CostModel, make_cost_model
from scorer.settings import PortfolioSettings

DAILY_COLUMNS = ("gross", "turnover", "cost", "net", "rank_ic")


def quantile_weights(scores: np.ndarray, quantile: float) -> np.ndarray:
    """Long the top `quantile` of assets, short the bottom; each side sums to +1 / −1.

    Per day, with n present assets, each side holds k = max(1, ⌊quantile·n⌋) assets at ±1/k
    (no book when n < 2). Ties are broken by asset position: assets are ranked by (score, index),
    so the short side takes the lowest ranks and the long side the highest, never overlapping.
    """
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    scores = np.asarray(scores, dtype=float)
    one_day = scores.ndim == 1
    by_day = np.atleast_2d(scores)
    present = np.isfinite(by_day)
    n_present = present.sum(axis=1, keepdims=True)
    # Absent assets sort last; a stable sort keeps ties in asset order.
    order = _stable_argsort(np.where(present, by_day, np.inf))
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(by_day.shape[1])[None, :], axis=1)
    per_side = np.maximum(1, np.floor(quantile * n_present + 1e-9)).astype(int)
    has_book = n_present >= 2
    short = (rank < per_side) & present & has_book
    long = (rank >= n_present - per_side) & present & has_book
    weights = (long.astype(float) - short.astype(float)) / per_side
    return weights[0] if one_day else weights


def _stable_argsort(values: np.ndarray) -> np.ndarray:
    """``np.argsort(values, axis=1, kind="stable")`` for rows without +inf entries to rank.

    The fast unstable sort is exact wherever a row has no tied finite values (the usual case
    for real-valued scores); only rows with ties are sorted again, stably.
    """
    order = np.argsort(values, axis=1)
    ordered = np.take_along_axis(values, order, axis=1)
    tied = ((ordered[:, 1:] == ordered[:, :-1]) & np.isfinite(ordered[:, 1:])).any(axis=1)
    if tied.any():
        order[tied] = np.argsort(values[tied], axis=1, kind="stable")
    return order


def trades(weights: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Weight changes per day, [days, assets]; day 0 trades nothing when `previous` is None."""
    by_day = np.atleast_2d(np.asarray(weights, dtype=float))
    start = by_day[:1] if previous is None else np.asarray(previous, dtype=float)[None, :]
    if start.shape[1] != by_day.shape[1]:
        raise ValueError("previous weights must have one entry per asset")
    return np.diff(np.concatenate([start, by_day]), axis=0)


def turnover(weights: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Σ|w_t − w_{t−1}| per day, between 0 and 4 for a ±1 book (a full replacement is 4).

    With `previous=None` the first day is not charged: building the first book is free.
    """
    return np.abs(trades(weights, previous)).sum(axis=1)


def gross_returns(weights: np.ndarray, next_returns: np.ndarray) -> np.ndarray:
    """Σ_i w_i(t)·r_i(t+1) per day.

    An asset with no weight contributes nothing whatever its return; a held asset whose next
    return is missing makes that day's gross NaN (loudly: the gate refuses non-finite data).
    """
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    r = np.atleast_2d(np.asarray(next_returns, dtype=float))
    if w.shape != r.shape:
        raise ValueError(f"weights {w.shape} and next returns {r.shape} differ in shape")
    held = w != 0
    contribution = np.where(held, w * r, 0.0)
    gross = contribution.sum(axis=1)
    gross[(held & ~np.isfinite(r)).any(axis=1)] = np.nan
    return gross


def rank_ic(scores: np.ndarray, next_returns: np.ndarray) -> np.ndarray:
    """Spearman correlation of score and next return per day (NaN on days with < 2 pairs)."""
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    r = np.atleast_2d(np.asarray(next_returns, dtype=float))
    both = np.isfinite(s) & np.isfinite(r)
    s_rank = _ranks_where(s, both)
    r_rank = _ranks_where(r, both)
    n = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s_c = np.where(both, s_rank - np.nansum(s_rank, axis=1, keepdims=True) / n[:, None], 0.0)
        r_c = np.where(both, r_rank - np.nansum(r_rank, axis=1, keepdims=True) / n[:, None], 0.0)
        covariance = (s_c * r_c).sum(axis=1)
        scale = np.sqrt((s_c**2).sum(axis=1) * (r_c**2).sum(axis=1))
        ic = covariance / scale
    ic[(n < 2) | (scale == 0)] = np.nan
    return ic


def _ranks_where(values: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Average ranks (from 1) per row among the kept (finite) entries; NaN elsewhere."""
    masked = np.where(keep, values, np.inf)  # dropped entries rank after every kept one
    order = np.argsort(masked, axis=1)
    ordered = np.take_along_axis(masked, order, axis=1)
    position = np.broadcast_to(np.arange(masked.shape[1]), masked.shape)
    starts = np.ones(masked.shape, dtype=bool)  # where a run of equal values begins
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    rank = position + 1.0  # by sorted position; a run of equal values shares its average
    tied = ~starts[:, 1:].all(axis=1)
    if tied.any():
        starts, tied_position = starts[tied], position[tied]
        ends = np.ones(starts.shape, dtype=bool)
        ends[:, :-1] = starts[:, 1:]
        first = np.maximum.accumulate(np.where(starts, tied_position, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, tied_position, masked.shape[1])[:, ::-1],
                                     axis=1)[:, ::-1]
        rank[tied] = (first + last) / 2 + 1
    ranks = np.empty(masked.shape)
    np.put_along_axis(ranks, order, rank, axis=1)
    ranks[~keep] = np.nan
    return ranks


@dataclass(frozen=True)
class SettledDays:
    """One version's settled batch of days: the books held and what they earned net of cost."""

    weights: np.ndarray  # [days, assets]; the last row is the book to carry forward
    gross: np.ndarray  # [days]
    turnover: np.ndarray  # [days]
    cost: np.ndarray  # [days]
    net: np.ndarray  # [days]
    rank_ic: np.ndarray  # [days]

    def to_frame(self, days: pd.Index | np.ndarray | list) -> pd.DataFrame:
        """The daily rows (gross, turnover, cost, net, rank_ic) indexed by day."""
        return pd.DataFrame(
            {name: getattr(self, name) for name in DAILY_COLUMNS},
            index=pd.Index(days, name="day"),
        )


def settle_days(
    scores: np.ndarray,
    next_returns: np.ndarray,
    previous_weights: np.ndarray | None,
    settings: PortfolioSettings,
    *,
    cost_model: CostModel | None = None,
    weights: np.ndarray | None = None,
) -> SettledDays:
    """Settle a batch of consecutive days for one version.

    `scores[t]` are the version's scores on day t, `next_returns[t]` the assets' returns from t to
    t+1, `previous_weights` the book held the day before the batch (None for a version's first
    day, which is not charged for building its book). `weights` is the book recorded with the
    scores, when there is one (it is `quantile_weights(scores, settings.quantile)`, computed
    here otherwise).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    next_returns = np.atleast_2d(np.asarray(next_returns, dtype=float))
    if scores.shape != next_returns.shape:
        raise ValueError(f"scores {scores.shape} and next returns {next_returns.shape} differ")
    model = cost_model if cost_model is not None else make_cost_model(settings)
    if weights is None:
        weights = quantile_weights(scores, settings.quantile)
    weights = np.atleast_2d(np.asarray(weights, dtype=float))
    if weights.shape != scores.shape:
        raise ValueError(f"weights {weights.shape} and scores {scores.shape} differ in shape")
    day_trades = trades(weights, previous_weights)
    gross = gross_returns(weights, next_returns)
    cost = np.asarray(model.cost(day_trades), dtype=float)
    return SettledDays(
        weights=weights,
        gross=gross,
        turnover=np.abs(day_trades).sum(axis=1),
        cost=cost,
        net=gross - cost,
        rank_ic=rank_ic(scores, next_returns),
    )
