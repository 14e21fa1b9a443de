"""Per-version metrics from its daily rows (gross, turnover, cost, net, rank_ic by day)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from scorer.jsonsafe import finite_or_none, json_safe
from scorer.sharpe import TRADING_DAYS


@dataclass(frozen=True)
class VersionMetrics:
    """Net-of-cost performance of one version over its scored days; None where undefined."""

    days: int
    mean_gross: float | None  # per day
    mean_net: float | None  # per day
    net_sharpe: float | None  # annualised, 252 days
    net_volatility: float | None  # annualised
    max_drawdown: float | None  # largest fall of cumulative (summed) net from its running peak
    hit_rate: float | None  # share of days with net > 0
    mean_turnover: float | None
    cost_drag: float | None  # mean cost per day
    mean_rank_ic: float | None
    breakeven_cost_bps: float | None  # 1e4 · mean(gross) / mean(turnover)

    def to_dict(self) -> dict:
        return json_safe(asdict(self))


def version_metrics(daily: pd.DataFrame) -> VersionMetrics:
    """Metrics of one version from its daily rows (any extra columns are ignored)."""
    net = _column(daily, "net")
    gross = _column(daily, "gross")
    turnover = _column(daily, "turnover")
    cost = _column(daily, "cost")
    rank_ic = _column(daily, "rank_ic") if "rank_ic" in daily else np.array([])
    days = int(net.size)
    if days == 0:
        return VersionMetrics(0, *([None] * 10))
    volatility = float(np.std(net, ddof=1)) if days >= 2 else math.nan
    sharpe = float(np.mean(net)) / volatility if volatility > 0 else math.nan
    cumulative = np.cumsum(net)
    peak = np.maximum.accumulate(np.concatenate([[0.0], cumulative]))[1:]
    mean_turnover = float(np.mean(turnover))
    finite_ic = rank_ic[np.isfinite(rank_ic)]
    return VersionMetrics(
        days=days,
        mean_gross=finite_or_none(np.mean(gross)),
        mean_net=finite_or_none(np.mean(net)),
        net_sharpe=finite_or_none(sharpe * math.sqrt(TRADING_DAYS)),
        net_volatility=finite_or_none(volatility * math.sqrt(TRADING_DAYS)),
        max_drawdown=finite_or_none(np.max(peak - cumulative)),
        hit_rate=finite_or_none(np.mean(net > 0)),
        mean_turnover=finite_or_none(mean_turnover),
        cost_drag=finite_or_none(np.mean(cost)),
        mean_rank_ic=finite_or_none(np.mean(finite_ic)) if finite_ic.size else None,
        breakeven_cost_bps=breakeven_cost_bps(float(np.mean(gross)), mean_turnover),
    )


def breakeven_cost_bps(mean_gross: float, mean_turnover: float) -> float | None:
    """The linear cost (bps per unit turnover) at which mean net would be zero."""
    if not mean_turnover > 0:
        return None
    return finite_or_none(1e4 * mean_gross / mean_turnover)


def cumulative_net(daily: pd.DataFrame) -> pd.Series:
    """Cumulative (summed) net return by day, for the leaderboard chart."""
    return daily["net"].astype(float).cumsum().rename("cumulative_net")


def _column(daily: pd.DataFrame, name: str) -> np.ndarray:
    return daily[name].to_numpy(dtype=float)
