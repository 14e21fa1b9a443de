"""What trading costs: a cost model turns each day's trades into a cost in return units.

A model sees the trades themselves (`w_t − w_{t−1}` per asset), not only their total, so that a
square-root impact model (cost growing with each asset's trade size relative to its volume) can be
added beside `LinearCost` without changing the callers.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from scorer.settings import PortfolioSettings


class CostModel(Protocol):
    """Cost of each day's trades, in return units (0.001 = 10 bps of capital)."""

    def cost(self, trades: np.ndarray) -> np.ndarray:
        """`trades` is [days, assets] of weight changes; returns the cost per day, [days]."""
        ...


class LinearCost:
    """A fixed cost per unit of turnover: cost = Σ|Δw| × cost_bps / 10⁴."""

    def __init__(self, cost_bps: float) -> None:
        if not np.isfinite(cost_bps) or cost_bps < 0:
            raise ValueError(f"cost_bps must be finite and non-negative, got {cost_bps}")
        self.cost_bps = float(cost_bps)

    def cost(self, trades: np.ndarray) -> np.ndarray:
        turnover = np.abs(np.atleast_2d(trades)).sum(axis=-1)
        return turnover * (self.cost_bps / 1e4)

    def __repr__(self) -> str:
        return f"LinearCost(cost_bps={self.cost_bps})"


def make_cost_model(settings: PortfolioSettings) -> CostModel:
    """The cost model the settings name."""
    if settings.cost_model == "linear":
        return LinearCost(settings.cost_bps)
    raise ValueError(f"unknown cost model {settings.cost_model!r}")  # pragma: no cover
