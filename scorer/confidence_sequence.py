"""The normal-mixture confidence sequence: a bound on the mean valid however often it is checked.

docs/gate.md: pass when d̄_T − σ̂_T·m(T) > δ, with
m(t) = sqrt( 2(tρ²+1)/(t²ρ²) · log( sqrt(tρ²+1) / a ) ) and
ρ² = (−W₋₁(−a²·e^{a²−1}) − 1) / t_opt, the mixture tuned to be tightest near t = t_opt.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import lambertw


def mixture_rho2(level: float, t_opt: float) -> float:
    """ρ² from the Lambert W lower branch for level `a` and planned window `t_opt`."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if t_opt <= 0:
        raise ValueError(f"t_opt must be positive, got {t_opt}")
    w = lambertw(-(level**2) * math.exp(level**2 - 1), k=-1)
    return float((-w.real - 1.0) / t_opt)


def mixture_boundary(n_days: np.ndarray | float, level: float, t_opt: float) -> np.ndarray | float:
    """m(t) for t = `n_days` (scalar or array), in units of the long-run standard deviation."""
    rho2 = mixture_rho2(level, t_opt)
    t = np.asarray(n_days, dtype=float)
    spread = t * rho2 + 1.0
    boundary = np.sqrt(2.0 * spread / (t * t * rho2) * np.log(np.sqrt(spread) / level))
    return float(boundary) if boundary.ndim == 0 else boundary


def days_needed(
    mean_edge: float,
    sigma: float,
    margin: float,
    level: float,
    t_opt: float,
    *,
    from_day: int,
    horizon: int = 100_000,
) -> int | None:
    """Fewest days t ≥ `from_day` with mean_edge − sigma·m(t) > margin, if the effect held.

    None when the edge does not exceed the margin or no day within `horizon` would do.
    """
    if not (math.isfinite(mean_edge) and math.isfinite(sigma)) or mean_edge <= margin:
        return None
    if sigma <= 0:
        return from_day
    t = np.arange(max(from_day, 1), horizon + 1, dtype=float)
    passing = np.flatnonzero(mean_edge - sigma * mixture_boundary(t, level, t_opt) > margin)
    return int(t[passing[0]]) if passing.size else None
