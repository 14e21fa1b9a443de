"""Hansen's (2005) test for Superior Predictive Ability, studentized, stationary bootstrap.

H0: no challenger's expected net beats the champion's. With d_k = net_k − net_champion
(= the champion's loss minus challenger k's, losses being −net):
T_SPA = max(0, max_k sqrt(T)·d̄_k/ω̂_k), ω̂_k² the long-run variance that the stationary bootstrap
implies (Hansen's kernel, as in `arch`), and the "consistent" re-centring: a challenger whose
d̄_k < −sqrt(ω̂_k²/T · 2 log log T) keeps its negative mean in the bootstrap (irrelevant to the
maximum); the others are re-centred at zero, the least favourable null.
"""

from __future__ import annotations

import math

import numpy as np


def stationary_bootstrap_indices(
    n_days: int, block_size: float, reps: int, rng: np.random.Generator
) -> np.ndarray:
    """[reps, n_days] indices: blocks of geometric length (mean `block_size`), wrapping around."""
    restart = rng.random((reps, n_days)) < 1.0 / block_size
    restart[:, 0] = True
    starts = rng.integers(0, n_days, size=(reps, n_days))
    steps = np.arange(n_days)[None, :]
    last_restart = np.maximum.accumulate(np.where(restart, steps, 0), axis=1)
    block_start = np.take_along_axis(starts, last_restart, axis=1)
    return (block_start + steps - last_restart) % n_days


def bootstrap_long_run_variance(d: np.ndarray, block_size: float) -> np.ndarray:
    """Hansen's ω̂²: γ₀ + 2 Σ_{i≥1} κ_i γ_i, κ_i = (1 − i/T)(1 − p)^i + (i/T)(1 − p)^{T−i}."""
    n_days = d.shape[0]
    centred = d - d.mean(axis=0)
    p = 1.0 / block_size
    variance = (centred**2).sum(axis=0) / n_days
    for lag in range(1, n_days):
        kappa = (1 - lag / n_days) * (1 - p) ** lag + (lag / n_days) * (1 - p) ** (n_days - lag)
        variance = variance + 2 * kappa * (centred[lag:] * centred[:-lag]).sum(axis=0) / n_days
    return variance


def spa_pvalue(
    d: np.ndarray,
    *,
    reps: int = 1000,
    block_size: float | None = None,
    seed: int = 0,
    studentize: bool = True,
) -> float:
    """Consistent SPA p-value for `d`, [T, k] daily net differences against the champion."""
    d = np.asarray(d, dtype=float)
    if d.ndim == 1:
        d = d[:, None]
    n_days = d.shape[0]
    if n_days < 3:
        raise ValueError("the SPA test needs at least three days")
    block_size = block_size if block_size is not None else max(1, int(math.sqrt(n_days)))
    mean = d.mean(axis=0)
    omega2 = bootstrap_long_run_variance(d, block_size)
    relevant = mean >= -np.sqrt(np.maximum(omega2, 0) / n_days * 2 * math.log(math.log(n_days)))
    centre = np.where(relevant, mean, 0.0)  # irrelevant challengers keep their own mean
    scale = np.sqrt(omega2) if studentize else np.ones_like(mean)
    scale = np.where(scale > 0, scale, np.inf)  # a constant difference carries no evidence
    observed = max(0.0, float(np.max(math.sqrt(n_days) * mean / scale)))
    indices = stationary_bootstrap_indices(n_days, block_size, reps, np.random.default_rng(seed))
    boot_means = np.stack([column[indices].mean(axis=1) for column in d.T], axis=1)  # [reps, k]
    simulated = np.max(math.sqrt(n_days) * (boot_means - centre) / scale, axis=1)
    return float(np.mean(np.maximum(simulated, 0.0) > observed))
