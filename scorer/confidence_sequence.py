"""Normal-mixture boundaries: bounds on a mean that hold however often they are checked.

Two-sided (the first edition of the gate): m(t) = sqrt( 2(tρ²+1)/(t²ρ²) · log( sqrt(tρ²+1)/a ) ),
with ρ² = (−W₋₁(−a²·e^{a²−1}) − 1) / t_opt, the mixture tuned to be tightest near t = t_opt.

One-sided (the anytime gate): mixing exp(λS_t − λ²t/2) over a half-normal λ ≥ 0 of scale ρ gives
the non-negative martingale M_t = 2/sqrt(1 + tρ²) · exp(S_t²/(2p)) · Φ(S_t/√p), p = t + 1/ρ²,
so by Ville's inequality P(∃t: M_t ≥ 1/a) ≤ a (Howard, Ramdas, McAuliffe & Sekhon 2021). The
boundary on the mean is the S_t/t that solves M_t = 1/a; ρ² is tuned as the two-sided one at
level 2a, which the one-sided boundary lies close to.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import lambertw, log_ndtr


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


def one_sided_mixture_boundary(
    n_days: np.ndarray | float, level: float, t_opt: float
) -> np.ndarray | float:
    """The one-sided m(t) for t = `n_days`, in units of the (long-run) standard deviation."""
    rho2 = mixture_rho2(min(2 * level, 0.5), t_opt)
    t = np.asarray(n_days, dtype=float)
    precision = t + 1.0 / rho2
    target = -math.log(level) - math.log(2.0) + 0.5 * np.log1p(t * rho2)

    def log_martingale_excess(score: np.ndarray) -> np.ndarray:
        return score**2 / (2 * precision) + log_ndtr(score / np.sqrt(precision)) - target

    high = t * mixture_boundary(t, level, t_opt)  # the two-sided boundary lies above
    if t.ndim == 0:
        root = brentq(log_martingale_excess, 0.0, float(high), xtol=1e-13, rtol=1e-13)
        return float(root / t)
    low = np.zeros_like(high)
    for _ in range(80):  # bisection, vectorised over t
        middle = 0.5 * (low + high)
        above = log_martingale_excess(middle) >= 0
        high = np.where(above, middle, high)
        low = np.where(above, low, middle)
    return high / t


def first_passing_day(
    edge_at: Callable[[int], float], *, from_day: int, last_day: int
) -> int | None:
    """The fewest days t in [from_day, last_day] with edge_at(t) > 0, edge_at increasing in t."""
    if from_day > last_day or edge_at(last_day) <= 0:
        return None
    low, high = from_day, last_day
    while low < high:
        middle = (low + high) // 2
        if edge_at(middle) > 0:
            high = middle
        else:
            low = middle + 1
    return low
