"""The synthetic market: daily returns of ``n_assets`` stocks from a drifting factor model.

Pure NumPy and deterministic in :class:`~trainer.config.MarketConfig` (the same config gives the
same returns on every machine). Each day ``t`` the return of asset ``i`` is

    r[t, i] = beta[i] * f[t] + alpha[t, i] + idio_vol[i] * eps[t, i]

with ``f`` the market factor, ``eps`` unit-variance Student-t noise, and the expected return
``alpha`` built from information up to ``t - 1`` only:

- **short-term reversal**: minus the last day's residual return (a fast, high-turnover signal);
- **momentum**: the total return from ``t-120`` to ``t-21`` (slow, but polluted by beta times
  the market's own path);
- **residual momentum**: the residual return (market removed) over ``t-60..t-1`` (slow, clean).

Each signal enters cross-sectionally standardised, times a strength that drifts slowly in time
(log-AR(1) around its base value), so a model fitted on old data decays and rotation matters.
The market is generated as one whole path of ``n_days`` (plus a discarded burn-in): landing days
later reveals more of the same path, never a different one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainer.config import MarketConfig

GENERATOR_VERSION = "1"
BURN_IN_DAYS = 130
MOMENTUM_WINDOW = (120, 21)  # from t-120 to t-21, both inclusive
RESIDUAL_MOMENTUM_DAYS = 60
MARKET_DRIFT = 0.0003  # the market's mean daily return


def trading_days(config: MarketConfig) -> pd.DatetimeIndex:
    """The market's ``n_days`` business days from ``start_date``."""
    return pd.bdate_range(start=config.start_date, periods=config.n_days)


def asset_ids(config: MarketConfig) -> list[str]:
    width = len(str(config.n_assets - 1))
    return [f"A{i:0{width}d}" for i in range(config.n_assets)]


def _cross_sectional_z(x: np.ndarray) -> np.ndarray:
    std = x.std()
    return (x - x.mean()) / std if std > 0 else np.zeros_like(x)


def _drifting_strengths(rng: np.random.Generator, config: MarketConfig, n_days: int) -> np.ndarray:
    """``[n_days, 3]`` strengths (reversal, momentum, residual momentum), each drifting slowly."""
    phi = 0.5 ** (1.0 / config.drift_halflife_days)
    shocks = rng.standard_normal((n_days, 3))
    level = np.empty((n_days, 3))
    level[0] = shocks[0]  # start from the stationary distribution (unit variance)
    scale = np.sqrt(1.0 - phi**2)
    for t in range(1, n_days):
        level[t] = phi * level[t - 1] + scale * shocks[t]
    sd = config.strength_drift
    base = np.array(
        [config.reversal_strength, config.momentum_strength, config.residual_momentum_strength]
    )
    return base * np.exp(sd * level - 0.5 * sd**2)


def _window_sum(cum: np.ndarray, first: int, last: int) -> np.ndarray:
    """Sum of daily values over days ``first..last`` (inclusive) from cumulative sums.

    ``cum[k]`` holds the sum over days ``0..k-1``; days before 0 count as zero.
    """
    return cum[max(last + 1, 0)] - cum[max(first, 0)]


def simulate_returns(config: MarketConfig) -> np.ndarray:
    """The whole market path: ``[n_days, n_assets]`` daily simple returns (float64)."""
    rng = np.random.default_rng(config.seed)
    n, total = config.n_assets, config.n_days + BURN_IN_DAYS

    betas = 1.0 + config.beta_dispersion * rng.standard_normal(n)
    idio_vol = config.idio_vol * np.exp(0.25 * rng.standard_normal(n))
    unit_t = np.sqrt(config.tail_dof / (config.tail_dof - 2.0))
    market = MARKET_DRIFT + config.market_vol * rng.standard_t(config.tail_dof, total) / unit_t
    noise = idio_vol * rng.standard_t(config.tail_dof, (total, n)) / unit_t
    strengths = _drifting_strengths(rng, config, total)

    returns = np.empty((total, n))
    cum_total = np.zeros((total + 1, n))
    cum_resid = np.zeros((total + 1, n))
    last_resid = np.zeros(n)
    mom_first, mom_last = MOMENTUM_WINDOW
    for t in range(total):
        momentum = _window_sum(cum_total, t - mom_first, t - mom_last)
        residual_momentum = _window_sum(cum_resid, t - RESIDUAL_MOMENTUM_DAYS, t - 1)
        s_rev, s_mom, s_res = strengths[t]
        alpha = (
            -s_rev * _cross_sectional_z(last_resid)
            + s_mom * _cross_sectional_z(momentum)
            + s_res * _cross_sectional_z(residual_momentum)
        )
        resid = alpha + noise[t]
        day = np.maximum(betas * market[t] + resid, -0.9)
        returns[t] = day
        cum_total[t + 1] = cum_total[t] + day
        cum_resid[t + 1] = cum_resid[t] + resid
        last_resid = resid
    return returns[BURN_IN_DAYS:]
