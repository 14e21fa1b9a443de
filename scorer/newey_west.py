"""Newey–West long-run variance (Bartlett kernel) of a daily series."""

from __future__ import annotations

import math

import numpy as np


def bartlett_lags(n_days: int) -> int:
    """The bandwidth L = ⌊4 (T/100)^{2/9}⌋."""
    return int(math.floor(4 * (n_days / 100) ** (2 / 9))) if n_days > 0 else 0


def newey_west_variance(values: np.ndarray, lags: int | None = None) -> np.ndarray | float:
    """Ω = γ₀ + 2 Σ_{j=1..L} (1 − j/(L+1)) γ_j, with γ_j = (1/T) Σ (x_t − x̄)(x_{t−j} − x̄).

    `values` is [T] or [T, k] (one series per column); `lags` defaults to `bartlett_lags(T)`.
    The variance of the mean is Ω / T.
    """
    x = np.asarray(values, dtype=float)
    n_days = x.shape[0]
    if n_days == 0:
        raise ValueError("no observations")
    lags = bartlett_lags(n_days) if lags is None else int(lags)
    centred = x - x.mean(axis=0)
    omega = (centred * centred).sum(axis=0) / n_days
    for lag in range(1, min(lags, n_days - 1) + 1):
        weight = 1.0 - lag / (lags + 1.0)
        gamma = (centred[lag:] * centred[:-lag]).sum(axis=0) / n_days
        omega = omega + 2.0 * weight * gamma
    return float(omega) if np.ndim(omega) == 0 else omega
