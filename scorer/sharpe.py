"""Per-day Sharpe ratio, the Probabilistic and the Deflated Sharpe Ratio.

Bailey & López de Prado (2012, 2014), as docs/gate.md has them: per-day SR (standard deviation with
ddof = 1), sample skewness γ₃ and **raw** kurtosis γ₄ (bias-corrected estimators, as pandas and
quantstats compute them), and
PSR(SR*) = Φ((SR − SR*)·sqrt(T − 1) / sqrt(1 − γ₃·SR + (γ₄ − 1)/4·SR²)),
SR₀ = sqrt(V)·[(1 − γ)Φ⁻¹(1 − 1/N) + γΦ⁻¹(1 − 1/(N·e))], DSR = PSR(SR₀).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

EULER_GAMMA = 0.5772156649
TRADING_DAYS = 252


@dataclass(frozen=True)
class SharpeMoments:
    """What the PSR needs from a daily return series."""

    sharpe: float  # per day
    skewness: float
    kurtosis: float  # raw: 3 for a normal distribution
    n_days: int


def daily_sharpe(returns: np.ndarray) -> float:
    """mean / std (ddof = 1), per day; NaN when undefined (fewer than 2 days or zero spread)."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return math.nan
    spread = float(np.std(r, ddof=1))
    return float(np.mean(r)) / spread if spread > 0 else math.nan


def sharpe_moments(returns: np.ndarray) -> SharpeMoments:
    """Per-day Sharpe, skewness and raw kurtosis (NaN where undefined: fewer than 4 days)."""
    r = np.asarray(returns, dtype=float)
    n = r.size
    skewness = raw_kurtosis = math.nan
    if n >= 4 and float(np.ptp(r)) > 0:
        centred = r - r.mean()
        m2 = float(np.mean(centred**2))
        if m2 > 0:
            g1 = float(np.mean(centred**3)) / m2**1.5
            g2 = float(np.mean(centred**4)) / m2**2 - 3.0
            # the bias-corrected estimators (scipy.stats skew and kurtosis with bias=False)
            skewness = g1 * math.sqrt(n * (n - 1)) / (n - 2)
            raw_kurtosis = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3)) + 3.0
    return SharpeMoments(daily_sharpe(r), skewness, raw_kurtosis, int(n))


def probabilistic_sharpe_ratio(
    sharpe: float, benchmark: float, n_days: int, skewness: float, raw_kurtosis: float
) -> float:
    """P(true SR > benchmark) given the observed per-day SR; NaN when undefined."""
    spread = 1.0 - skewness * sharpe + (raw_kurtosis - 1.0) / 4.0 * sharpe**2
    if n_days < 2 or not math.isfinite(spread) or spread <= 0 or not math.isfinite(sharpe):
        return math.nan
    return float(norm.cdf((sharpe - benchmark) * math.sqrt(n_days - 1) / math.sqrt(spread)))


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """SR₀: the Sharpe the best of N unskilled trials would show, given their variance V."""
    if n_trials <= 1:
        return 0.0
    return math.sqrt(variance) * (
        (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n_trials)
        + EULER_GAMMA * norm.ppf(1 - 1 / (n_trials * math.e))
    )


def trial_variance(trial_sharpes: Sequence[float] | None, n_days: int) -> float:
    """V = max(variance of the trial Sharpes (ddof = 1), 1/(T − 1))."""
    floor = 1.0 / (n_days - 1)
    finite = [s for s in (trial_sharpes or ()) if math.isfinite(s)]
    if len(finite) < 2:
        return floor
    return max(float(np.var(finite, ddof=1)), floor)


def deflated_sharpe_ratio(
    moments: SharpeMoments, n_trials: int, trial_sharpes: Sequence[float] | None = None
) -> float:
    """DSR = PSR(SR₀) with V from the trial Sharpes; NaN when undefined."""
    if moments.n_days < 4:
        return math.nan
    variance = trial_variance(trial_sharpes, moments.n_days)
    benchmark = expected_max_sharpe(n_trials, variance)
    return probabilistic_sharpe_ratio(
        moments.sharpe, benchmark, moments.n_days, moments.skewness, moments.kurtosis
    )
