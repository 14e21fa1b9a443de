"""Group-sequential boundaries: α spent over the planned horizon, Lan–DeMets O'Brien–Fleming type.

The one-sided spending function α(τ) = 2·(1 − Φ(z_{1−α/2} / √τ)) spends almost nothing early and
all of α at the information fraction τ = 1. The boundary c_k of look k solves
P(Z_1 < c_1, …, Z_{k−1} < c_{k−1}, Z_k ≥ c_k) = α(τ_k) − α(τ_{k−1}) under no difference, where
S_k = Z_k·√τ_k is a Gaussian random walk with independent increments of variance τ_k − τ_{k−1}.
The probabilities are integrated numerically, look after look (Armitage, McPherson & Rowe 1969;
Jennison & Turnbull 2000, ch. 19): the density of S_k on the continuation region is carried on a
fine uniform grid, and each step is a convolution with the increment's normal density.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr, ndtri

GRID_STEPS_PER_SD = 12  # grid points per standard deviation of the smallest increment
KERNEL_SDS = 9.0  # the increment's density is cut beyond this many standard deviations
LOWER_SDS = 9.0  # the density of S_k is carried down to −LOWER_SDS·√τ_K
MAX_GRID = 40_000


def obrien_fleming_spending(fraction: np.ndarray | float, alpha: float) -> np.ndarray | float:
    """α(τ) = 2·(1 − Φ(z_{1−α/2}/√τ)): the α spent by information fraction τ (0 at τ = 0)."""
    tau = np.clip(np.asarray(fraction, dtype=float), 0.0, 1.0)
    with np.errstate(divide="ignore"):
        spent = 2.0 * ndtr(-ndtri(1.0 - alpha / 2.0) / np.sqrt(tau))
    return float(spent) if spent.ndim == 0 else spent


def group_sequential_boundaries(fractions: np.ndarray, alpha: float) -> np.ndarray:
    """The z-boundaries c_1..c_K for looks at increasing information fractions τ_1..τ_K ≤ 1.

    A look whose share of α underflows gets +inf (no crossing is possible there).
    """
    tau = np.asarray(fractions, dtype=float)
    if tau.ndim != 1 or tau.size == 0 or np.any(np.diff(tau) <= 0) or tau[0] <= 0 or tau[-1] > 1:
        raise ValueError("information fractions must increase strictly within (0, 1]")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha must be in (0, 0.5), got {alpha}")
    increments = np.diff(tau, prepend=0.0)
    spend = np.diff(obrien_fleming_spending(tau, alpha), prepend=0.0)
    step = math.sqrt(increments.min()) / GRID_STEPS_PER_SD
    step = max(step, 2 * LOWER_SDS * math.sqrt(tau[-1]) / MAX_GRID)
    lowest = -LOWER_SDS * math.sqrt(tau[-1])

    # look 1: S_1 ~ N(0, τ_1)
    bounds = np.empty(tau.size)
    bounds[0] = _first_bound(spend[0], tau[0])
    nodes = _grid_below(bounds[0] * math.sqrt(tau[0]), lowest, step)
    density = np.exp(-0.5 * nodes**2 / tau[0]) / math.sqrt(2 * math.pi * tau[0])
    for k in range(1, tau.size):
        mass = density * _trapezoid_weights(nodes)
        sd = math.sqrt(increments[k])
        bounds[k] = _next_bound(nodes, mass, sd, spend[k], math.sqrt(tau[k]), bounds[k - 1])
        top = bounds[k] * math.sqrt(tau[k])
        nodes_next = _grid_below(top, lowest, step)
        density = _propagate(nodes, mass, nodes_next, sd, step)
        nodes = nodes_next
    return bounds


@lru_cache(maxsize=64)
def daily_boundaries(level: float, first_look: int, horizon: int) -> tuple[float, ...]:
    """Boundaries for a look on every paired day `first_look`..`horizon`, τ = day / horizon."""
    days = np.arange(first_look, horizon + 1, dtype=float)
    return tuple(float(c) for c in group_sequential_boundaries(days / horizon, level))


def _first_bound(spend: float, tau: float) -> float:
    return math.inf if spend <= 0 else float(-ndtri(spend))


def _grid_below(top: float, lowest: float, step: float) -> np.ndarray:
    """Uniform grid points j·step in [lowest, top), then `top` itself (or a far point if inf)."""
    upper = top if math.isfinite(top) else -lowest
    first, last = math.ceil(lowest / step), math.floor(upper / step - 1e-9)
    return np.append(np.arange(first, last + 1) * step, upper)


def _trapezoid_weights(nodes: np.ndarray) -> np.ndarray:
    gaps = np.diff(nodes)
    weights = np.zeros_like(nodes)
    weights[:-1] += gaps / 2
    weights[1:] += gaps / 2
    return weights


def _next_bound(
    nodes: np.ndarray, mass: np.ndarray, sd: float, spend: float, root_tau: float, guess: float
) -> float:
    """The z-boundary at which the probability of crossing at this look equals `spend`."""
    if spend <= 0:
        return math.inf
    log_spend = math.log(spend)
    near = (nodes >= nodes[-1] - 40 * sd) & (mass > 0)  # farther nodes cannot cross in one step
    nodes, mass = nodes[near], mass[near]

    def excess(z: float) -> float:
        tails = log_ndtr((nodes - z * root_tau) / sd)  # log P(increment ≥ boundary − s)
        peak = tails.max()
        return math.log(float(np.sum(mass * np.exp(tails - peak)))) + peak - log_spend

    low, high = (guess - 1.0, guess + 1.0) if math.isfinite(guess) else (-10.0, 60.0)
    while excess(low) < 0 and low > -10:
        low -= 4.0
    while excess(high) > 0:
        high += 4.0
    return float(brentq(excess, low, high, xtol=1e-12, rtol=1e-12))


def _propagate(
    nodes: np.ndarray, mass: np.ndarray, nodes_next: np.ndarray, sd: float, step: float
) -> np.ndarray:
    """Density of S_k at `nodes_next`: Σ_j mass_j·φ_sd(x − s_j), by convolution on the grid."""
    uniform = nodes[:-1] if nodes.size > 1 else nodes[:0]
    endpoint, end_mass = nodes[-1], mass[-1]
    reach = int(math.ceil(KERNEL_SDS * sd / step))
    offsets = np.arange(-reach, reach + 1) * step
    kernel = np.exp(-0.5 * (offsets / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    density = np.zeros(nodes_next.size)
    if uniform.size:
        start = int(round(uniform[0] / step))
        full = np.convolve(mass[:-1], kernel)  # values at (start − reach + i)·step
        positions = np.rint(nodes_next[:-1] / step).astype(int) - (start - reach)
        inside = (positions >= 0) & (positions < full.size)
        density[:-1][inside] = full[positions[inside]]
        # the last point (the boundary itself) is off the grid: sum it directly
        near = np.abs(nodes_next[-1] - uniform) <= KERNEL_SDS * sd
        density[-1] = np.sum(
            mass[:-1][near] * np.exp(-0.5 * ((nodes_next[-1] - uniform[near]) / sd) ** 2)
        ) / (sd * math.sqrt(2 * math.pi))
    density += (
        end_mass
        * np.exp(-0.5 * ((nodes_next - endpoint) / sd) ** 2)
        / (sd * math.sqrt(2 * math.pi))
    )
    return density
