"""The anytime gate's boundary: a bound on a mean that holds however often it is checked.

A one-sided normal mixture (Robbins 1970; Howard, Ramdas, McAuliffe & Sekhon 2021). For a walk
S_t of t standardized daily differences, mixing the likelihood ratio exp(λS_t − λ²t/2) of a
daily edge λ against none over a prior on λ ≥ 0 gives a non-negative martingale M_t with
M_0 = 1, so by Ville's inequality P(∃t: M_t ≥ 1/a) ≤ a when there is no edge, for every t,
however often it is looked at. The prior is a normal centred on the planned edge
θ_H = (z_{1−a} + z_{0.8})/√H, the edge that a single test at level a on H days (the planned
information) detects with 80 % power, with standard deviation θ_H/4, truncated to λ ≥ 0:

    M_t = exp(q²/(2p) − θ²/(2ρ²)) · Φ(q/√p) / (ρ√p · Φ(θ/ρ)),  p = t + 1/ρ², q = S_t + θ/ρ².

The boundary on the mean is the S_t/t that solves M_t = 1/a. Centred on the planned edge, the
mixture spends most of a where a real edge of that size would cross, around H to 2H days; it
keeps positive weight near λ = 0, so any positive edge is found in the end, later than with a
prior centred at 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtri

PLANNED_POWER = 0.8
PRIOR_SPREAD = 0.25  # the prior's standard deviation, as a share of the planned edge


def planned_edge(level: float, t_opt: float) -> float:
    """θ_H: the daily edge (in standard deviations) a one-look z-test at `level` on `t_opt`
    days detects with 80 % power."""
    if not 0 < level < 0.5:
        raise ValueError(f"level must be in (0, 0.5), got {level}")
    if t_opt <= 0:
        raise ValueError(f"t_opt must be positive, got {t_opt}")
    return float((ndtri(1 - level) + ndtri(PLANNED_POWER)) / math.sqrt(t_opt))


def log_mixture_martingale(
    score: np.ndarray | float, n_days: np.ndarray | float, centre: float, spread: float
) -> np.ndarray:
    """log M_t for S_t = `score` after t = `n_days`, prior N(centre, spread²) on λ ≥ 0."""
    precision = np.asarray(n_days, dtype=float) + 1.0 / spread**2
    shifted = np.asarray(score, dtype=float) + centre / spread**2
    return (
        shifted**2 / (2 * precision)
        - centre**2 / (2 * spread**2)
        + log_ndtr(shifted / np.sqrt(precision))
        - 0.5 * np.log(spread**2 * precision)
        - log_ndtr(centre / spread)
    )


def one_sided_mixture_boundary(
    n_days: np.ndarray | float, level: float, t_opt: float
) -> np.ndarray | float:
    """m(t) for t = `n_days` (scalar or array), in units of the (long-run) standard deviation:
    the smallest mean S_t/t with M_t ≥ 1/a."""
    centre = planned_edge(level, t_opt)
    spread = PRIOR_SPREAD * centre
    t = np.asarray(n_days, dtype=float)
    target = -math.log(level)

    def excess(score: np.ndarray | float) -> np.ndarray:
        return log_mixture_martingale(score, t, centre, spread) - target

    high = np.sqrt(t)  # M_t increases with S_t: widen until it reaches 1/a
    while np.any(excess(high) < 0):
        high = np.where(excess(high) < 0, 2 * high, high)
    if t.ndim == 0:
        root = brentq(excess, 0.0, float(high), xtol=1e-13, rtol=1e-13)
        return float(root / t)
    low = np.zeros_like(high)
    for _ in range(80):  # bisection, vectorised over t
        middle = 0.5 * (low + high)
        above = excess(middle) >= 0
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
