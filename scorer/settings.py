"""Settings of the scorer: the portfolio rule, the cost model and the promotion gate.

These are the `shadow.portfolio` and `gate` sections of the configuration (sample.yaml gives the
defaults, docs/gate.md the gate); `registry.config` embeds them, the scorer's functions take
them as arguments.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class GateSettings(BaseModel):
    """What a challenger must show before it may replace the champion (docs/gate.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alpha: float = Field(0.05, gt=0, lt=0.5, description="false-promotion rate allowed")
    margin: float = Field(0.0, ge=0, description="δ: required daily net edge over the champion")
    min_days: int = Field(60, ge=2, description="paired days needed before any verdict")
    mode: Literal["group_sequential", "anytime", "fixed"] = "group_sequential"
    horizon_days: int = Field(
        120,
        ge=2,
        description="last look (group-sequential), planned days (anytime), decision day (fixed)",
    )
    min_dsr: float = Field(0.95, ge=0, le=1, description="Deflated Sharpe Ratio floor")


class PortfolioSettings(BaseModel):
    """How scores become a book, and what trading it costs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    quantile: float = Field(0.2, gt=0, le=0.5, description="fraction of assets long and short")
    cost_bps: float = Field(10.0, ge=0, le=1000, description="linear cost per unit turnover")
    cost_model: Literal["linear"] = "linear"
