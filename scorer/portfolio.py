"""From scores to a dollar-neutral long/short book, and what that book earned and cost.

Shapes: scores and returns are [days, assets] (or [assets] for one day); a non-finite score means
the asset is absent that day and gets no weight. The asset axis must be aligned across days.
"""

from __future__ import annotations

import math
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
    return _book(scores, quantile, with_ranks=False)[0]


def ranked_book(scores: np.ndarray, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    """``quantile_weights(scores, quantile)`` and ``ranks(scores)`` from one sort of the scores:
    a version's book and, for its rank IC, its scores' ranks."""
    return _book(scores, quantile, with_ranks=True)


def _book(scores: np.ndarray, quantile: float, *, with_ranks: bool
          ) -> tuple[np.ndarray, np.ndarray | None]:
    if not 0 < quantile <= 0.5:
        raise ValueError(f"quantile must be in (0, 0.5], got {quantile}")
    scores = np.asarray(scores, dtype=float)
    one_day = scores.ndim == 1
    by_day = np.atleast_2d(scores)
    present = np.isfinite(by_day)
    everything = bool(present.all())
    # Absent assets sort last; a stable sort keeps ties in asset order.
    masked = by_day if everything else np.where(present, by_day, np.inf)
    order, ordered = _stable_argsort(masked, finite=everything)
    if everything and by_day.shape[1] >= 2:  # the usual day: every asset scored
        per_side = max(1, math.floor(quantile * by_day.shape[1] + 1e-9))
        weights = np.zeros(by_day.shape)
        _put_by_row(weights, order[:, :per_side], -1.0 / per_side)
        _put_by_row(weights, order[:, -per_side:], 1.0 / per_side)
    else:
        n_present = present.sum(axis=1, keepdims=True)
        rank = np.empty_like(order)
        _put_by_row(rank, order, np.arange(by_day.shape[1]))
        per_side = np.maximum(1, np.floor(quantile * n_present + 1e-9)).astype(int)
        has_book = n_present >= 2
        short = (rank < per_side) & present & has_book
        long = (rank >= n_present - per_side) & present & has_book
        weights = (long.astype(float) - short.astype(float)) / per_side
    score_ranks = (_ranks_where(by_day, present, sorted_by_row=(order, ordered)) if with_ranks
                   else None)
    if one_day:
        return weights[0], None if score_ranks is None else score_ranks[0]
    return weights, score_ranks


def _put_by_row(target: np.ndarray, columns: np.ndarray, values: float | np.ndarray) -> None:
    """``np.put_along_axis(target, columns, values, axis=1)`` for a new 2-D array, through one
    flat index (a third of the time: no index array per axis)."""
    assert target.flags.c_contiguous
    flat = columns + (np.arange(target.shape[0]) * target.shape[1])[:, None]
    target.reshape(-1)[flat.ravel()] = np.broadcast_to(values, columns.shape).ravel()


def _stable_argsort(values: np.ndarray, *, finite: bool = False
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``np.argsort(values, axis=1, kind="stable")`` for rows without +inf entries to rank,
    and the values in that order (``finite``: the caller knows every value is finite).

    The fast unstable sort is exact wherever a row has no tied finite values (the usual case
    for real-valued scores); only rows with ties are sorted again, stably (which leaves the
    sorted values as they are).
    """
    order = np.argsort(values, axis=1)
    ordered = np.take_along_axis(values, order, axis=1)
    equal = ordered[:, 1:] == ordered[:, :-1]
    tied = (equal if finite else equal & np.isfinite(ordered[:, 1:])).any(axis=1)
    if tied.any():
        order[tied] = np.argsort(values[tied], axis=1, kind="stable")
    return order, ordered


def trades(weights: np.ndarray, previous: np.ndarray | None = None) -> np.ndarray:
    """Weight changes per day, [days, assets]; day 0 trades nothing when `previous` is None."""
    by_day = np.atleast_2d(np.asarray(weights, dtype=float))
    start = by_day[0] if previous is None else np.asarray(previous, dtype=float)
    if start.shape != by_day.shape[1:]:
        raise ValueError("previous weights must have one entry per asset")
    changes = np.empty(by_day.shape)
    np.subtract(by_day[0], start, out=changes[0])
    np.subtract(by_day[1:], by_day[:-1], out=changes[1:])
    return changes


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
    if np.isfinite(r).all():  # the usual batch: every return known
        return np.einsum("ij,ij->i", w, r)
    held = w != 0
    contribution = np.where(held, w * r, 0.0)
    gross = contribution.sum(axis=1)
    gross[(held & ~np.isfinite(r)).any(axis=1)] = np.nan
    return gross


def rank_ic(scores: np.ndarray, next_returns: np.ndarray, *,
            score_ranks: np.ndarray | None = None,
            return_ranks: np.ndarray | None = None) -> np.ndarray:
    """Spearman correlation of score and next return per day (NaN on days with < 2 pairs).

    ``score_ranks`` is ``ranks(scores)`` and ``return_ranks`` is ``ranks(next_returns)`` when
    the caller has them (a version's book is built from one sort of its scores; versions scored
    on the same days share the returns' ranks). Each is used on the days where the pairs are
    exactly its finite entries, and the other days are ranked here.
    """
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    r = np.atleast_2d(np.asarray(next_returns, dtype=float))
    if s.shape != r.shape:
        raise ValueError(f"scores {s.shape} and next returns {r.shape} differ in shape")
    finite_s, finite_r = np.isfinite(s), np.isfinite(r)
    both = finite_s & finite_r
    s_rank = _paired_ranks(s, both, finite_s, score_ranks, "score")
    r_rank = _paired_ranks(r, both, finite_r, return_ranks, "return")
    n = both.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if both.all():  # every pair present: the ranks' mean is (n + 1) / 2, ties or not
            centre = n * ((n + 1) / 2) ** 2  # so Σ(a − mean)(b − mean) = Σab − centre
            covariance = np.einsum("ij,ij->i", s_rank, r_rank) - centre
            scale = np.sqrt((np.einsum("ij,ij->i", s_rank, s_rank) - centre)
                            * (np.einsum("ij,ij->i", r_rank, r_rank) - centre))
        else:
            s_c = np.where(both, s_rank - np.nansum(s_rank, axis=1, keepdims=True)
                           / n[:, None], 0.0)
            r_c = np.where(both, r_rank - np.nansum(r_rank, axis=1, keepdims=True)
                           / n[:, None], 0.0)
            covariance = np.einsum("ij,ij->i", s_c, r_c)
            scale = np.sqrt(np.einsum("ij,ij->i", s_c, s_c) * np.einsum("ij,ij->i", r_c, r_c))
        ic = covariance / scale
    ic[(n < 2) | (scale == 0)] = np.nan
    return ic


def _paired_ranks(values: np.ndarray, both: np.ndarray, finite: np.ndarray,
                  shared: np.ndarray | None, what: str) -> np.ndarray:
    """Ranks of ``values`` among the pairs ``both``: the caller's ``shared`` ranks (among the
    finite ``values``) on the days where the two agree, the others ranked again."""
    if shared is None:
        return _ranks_where(values, both)
    shared = np.atleast_2d(np.asarray(shared, dtype=float))
    if shared.shape != values.shape:
        raise ValueError(f"{what} ranks {shared.shape} and {what}s {values.shape} differ")
    narrower = (both != finite).any(axis=1)  # a pair whose other half is missing
    if not narrower.any():
        return shared
    shared = shared.copy()
    shared[narrower] = _ranks_where(values[narrower], both[narrower])
    return shared


def ranks(values: np.ndarray) -> np.ndarray:
    """Average ranks (from 1) per row among the finite entries; NaN elsewhere."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    return _ranks_where(values, np.isfinite(values))


def _ranks_where(values: np.ndarray, keep: np.ndarray, *,
                 sorted_by_row: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Average ranks (from 1) per row among the kept (finite) entries; NaN elsewhere.

    ``sorted_by_row`` is an argsort of each row with the dropped entries last and the values
    in that order, when the caller has them. A row without ties takes its ranks from that sort;
    only rows with ties are ranked again (pandas' average rank, as ``scipy.stats.rankdata``
    gives it: pandas is loaded already, where importing SciPy's statistics for the first tied
    row would cost a fresh ``shadow run`` most of a second).
    """
    everything = bool(keep.all())
    masked = values if everything else np.where(keep, values, np.inf)  # dropped rank last
    if sorted_by_row is None:
        order = np.argsort(masked, axis=1)
        ordered = np.take_along_axis(masked, order, axis=1)
    else:
        order, ordered = sorted_by_row
    ranks = np.empty(masked.shape)
    _put_by_row(ranks, order, np.arange(1.0, masked.shape[1] + 1))
    equal = ordered[:, 1:] == ordered[:, :-1]
    tied = (equal if everything else equal & np.isfinite(ordered[:, 1:])).any(axis=1)
    if tied.any():  # a run of equal kept values shares its average position
        ranks[tied] = pd.DataFrame(masked[tied]).rank(axis=1, method="average").to_numpy()
    if not everything:
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
    score_ranks: np.ndarray | None = None,
    return_ranks: np.ndarray | None = None,
) -> SettledDays:
    """Settle a batch of consecutive days for one version.

    `scores[t]` are the version's scores on day t, `next_returns[t]` the assets' returns from t to
    t+1, `previous_weights` the book held the day before the batch (None for a version's first
    day, which is not charged for building its book). `weights` is the book recorded with the
    scores, when there is one (it is `quantile_weights(scores, settings.quantile)`, computed
    here otherwise). `score_ranks` is `ranks(scores)` and `return_ranks` `ranks(next_returns)`,
    when the caller has them (`ranked_book` gives a book and its scores' ranks from one sort).
    """
    scores = np.atleast_2d(np.asarray(scores, dtype=float))
    next_returns = np.atleast_2d(np.asarray(next_returns, dtype=float))
    if scores.shape != next_returns.shape:
        raise ValueError(f"scores {scores.shape} and next returns {next_returns.shape} differ")
    model = cost_model if cost_model is not None else make_cost_model(settings)
    if weights is None:
        weights, score_ranks = ranked_book(scores, settings.quantile)
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
        rank_ic=rank_ic(scores, next_returns, score_ranks=score_ranks,
                        return_ranks=return_ranks),
    )
