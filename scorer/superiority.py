"""The gate's superiority rule, in each mode: is the mean daily net edge d̄ above the margin δ?

`level` is α/k, k the challengers tried in the comparison window (Bonferroni).
- group_sequential: a look on every paired day from `min_days` to the horizon H; pass at the first
  look where d̄_t − σ̂_t·c_t/√t > δ, c_t the Lan–DeMets O'Brien–Fleming boundary at τ = t/H
  (`scorer.spending`). A crossing is a decision, and so is reaching H without one: later days
  report it and never test again.
- anytime: d̄_T − σ̂_T·m(T) > δ with the one-sided normal-mixture boundary m, its prior centred on
  the edge a one-look test on H days would detect (`confidence_sequence`).
- fixed: the EWC t-test on the first H paired days, decided once on day H.
Both boundaries on d̄ are studentized: the z-boundary becomes the Student-t quantile with the same
tail, with the Bartlett estimate's effective degrees of freedom (`newey_west.effective_dof`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from scipy.stats import norm

from scorer.confidence_sequence import first_passing_day, one_sided_mixture_boundary
from scorer.ewc import ewc_test
from scorer.newey_west import effective_dof, long_run_variance, studentized
from scorer.report import RuleCheck
from scorer.settings import GateSettings
from scorer.spending import daily_boundaries

DAYS_NEEDED_SEARCH = 100_000


@dataclass
class Superiority:
    check: RuleCheck
    fields: dict[str, Any] = field(default_factory=dict)  # report fields: d̄, σ̂, bound, ...


def judge_superiority(
    d: np.ndarray, *, settings: GateSettings, level: float, k_tried: int
) -> Superiority:
    """The superiority rule on the daily differences `d` (at least two days, finite)."""
    if settings.mode == "fixed":
        return _fixed(d, settings, level, k_tried)
    if settings.mode == "anytime":
        return _anytime(d, settings, level)
    return _group_sequential(d, settings, level)


@lru_cache(maxsize=65_536)
def anytime_boundary(level: float, t_opt: int, day: int) -> float:
    """m(t) of the anytime mode on d̄, in units of σ̂: one-sided mixture, studentized."""
    z = float(one_sided_mixture_boundary(day, level, t_opt)) * math.sqrt(day)
    return studentized(z, day) / math.sqrt(day)


@lru_cache(maxsize=65_536)
def group_sequential_boundary(level: float, first: int, horizon: int, day: int) -> float:
    """c_t/√t of the group-sequential look on paired day `day`, studentized."""
    return studentized(daily_boundaries(level, first, horizon)[day - first], day) / math.sqrt(day)


def long_run_sd(d: np.ndarray) -> float:
    return math.sqrt(max(float(long_run_variance(d)), 0.0))


def _anytime(d: np.ndarray, settings: GateSettings, level: float) -> Superiority:
    n_days, mean, sigma = len(d), float(np.mean(d)), long_run_sd(d)
    margin, t_opt = settings.margin, settings.horizon_days

    def boundary(t: int) -> float:
        return anytime_boundary(level, t_opt, t)

    m = boundary(n_days)
    lower = mean - sigma * m
    passed = lower > margin
    needed = None
    if mean > margin:
        needed = first_passing_day(
            lambda t: mean - sigma * boundary(t) - margin,
            from_day=max(n_days, settings.min_days),
            last_day=DAYS_NEEDED_SEARCH,
        )
    detail = (
        f"Anytime lower bound on the daily net edge {_bps(lower)} "
        f"{'exceeds' if passed else 'does not exceed'} the margin {_bps(margin)} "
        f"(edge {_bps(mean)}, level α/k = {level:.4g}; one-sided mixture boundary planned for "
        f"{t_opt} days, Student-t with {effective_dof(n_days)} degrees of freedom)."
    )
    days_needed = None if needed is None else needed - n_days
    return _on_the_bound(passed, detail, margin, mean, sigma, m, days_needed)


def _group_sequential(d: np.ndarray, settings: GateSettings, level: float) -> Superiority:
    n_days, margin = len(d), settings.margin
    first, horizon = settings.min_days, max(settings.horizon_days, settings.min_days)

    def boundary(t: int) -> float:
        return group_sequential_boundary(level, first, horizon, t)

    decided_on, passed = None, False
    for t in range(first, min(n_days, horizon) + 1):
        window = d[:t]
        if float(np.mean(window)) - long_run_sd(window) * boundary(t) > margin:
            decided_on, passed = t, True
            break
    if decided_on is None and n_days >= horizon:
        decided_on = horizon
    shown = decided_on or n_days  # the statistics of the deciding look, else of today
    mean, sigma = float(np.mean(d[:shown])), long_run_sd(d[:shown])
    m = boundary(shown) if shown >= first else None
    lower = None if m is None else mean - sigma * m
    if decided_on is not None:
        needed = 0 if passed else None
    else:
        needed = _first_look(mean, sigma, margin, boundary, max(n_days + 1, first), horizon)
        needed = None if needed is None else needed - n_days
    level_text = f"level α/k = {level:.4g}, horizon {horizon} days"
    if passed:
        detail = (
            f"Group-sequential lower bound on the daily net edge {_bps(lower)} exceeded the "
            f"margin {_bps(margin)} on paired day {decided_on} (edge {_bps(mean)}, "
            f"{level_text}); the decision stands."
        )
    elif decided_on is not None:
        detail = (
            f"The daily net edge never cleared the margin {_bps(margin)} by the horizon: "
            f"decided on paired day {decided_on} (lower bound {_bps(lower)}, edge {_bps(mean)}, "
            f"{level_text}); the decision stands."
        )
    else:
        bound_text = "n/a" if lower is None else _bps(lower)
        detail = (
            f"Group-sequential lower bound on the daily net edge {bound_text} does not exceed "
            f"the margin {_bps(margin)} (edge {_bps(mean)}, {level_text}); "
            f"a look every paired day until day {horizon}."
        )
    return _on_the_bound(passed, detail, margin, mean, sigma, m, needed, decided_on)


def _on_the_bound(
    passed: bool,
    detail: str,
    margin: float,
    mean: float,
    sigma: float,
    boundary: float | None,
    days_needed: int | None,
    decided_on_day: int | None = None,
) -> Superiority:
    """The rule and report fields of a lower bound d̄ − σ̂·m compared with the margin."""
    lower = None if boundary is None else mean - sigma * boundary
    check = RuleCheck("superiority", passed, lower, margin, "return per day", detail)
    fields = {
        "mean_difference": mean,
        "long_run_sd": sigma,
        "boundary": boundary,
        "lower_bound": lower,
        "days_needed": days_needed,
        "decided_on_day": decided_on_day,
    }
    return Superiority(check, fields)


def _first_look(mean, sigma, margin, boundary, first, last) -> int | None:
    if not mean > margin:
        return None
    for t in range(first, last + 1):
        if mean - sigma * boundary(t) > margin:
            return t
    return None


def _fixed(d: np.ndarray, settings: GateSettings, level: float, k_tried: int) -> Superiority:
    n_days, horizon, margin = len(d), settings.horizon_days, settings.margin
    decided = n_days >= horizon
    window = d[:horizon] if decided else d
    mean, sigma = float(np.mean(window)), long_run_sd(window)
    test = ewc_test(window, margin)
    adjusted = min(1.0, test.pvalue * k_tried)
    passed = decided and adjusted <= settings.alpha
    fields: dict[str, Any] = {
        "mean_difference": mean,
        "long_run_sd": sigma,
        "pvalue": test.pvalue,
        "adjusted_pvalue": adjusted,
    }
    if decided:
        fields |= {"decided_on_day": horizon, "days_needed": 0 if passed else None}
        detail = (
            f"EWC test of a daily net edge above {_bps(margin)} on the first {horizon} paired "
            f"days, decided on paired day {horizon}: Bonferroni-adjusted p = {adjusted:.4g} "
            f"{'≤' if passed else '>'} α = {settings.alpha} across {k_tried} challenger(s) "
            f"(raw p = {test.pvalue:.4g}); the decision stands."
        )
    else:
        needed = _normal_days_needed(mean, sigma, margin, level)
        if needed is not None:
            fields["days_needed"] = max(needed, horizon, settings.min_days) - n_days
        detail = f"Fixed mode decides on paired day {horizon}; {n_days} so far."
    unit = "p-value"
    return Superiority(
        RuleCheck("superiority", passed, adjusted, settings.alpha, unit, detail), fields
    )


def _normal_days_needed(mean: float, sigma: float, margin: float, level: float) -> int | None:
    """Normal approximation: T with sqrt(T)(d̄ − δ)/σ̂ ≥ z_{1−α/k}."""
    if not mean > margin or not sigma > 0:
        return None
    days = (norm.isf(level) * sigma / (mean - margin)) ** 2
    return math.ceil(days) if days < DAYS_NEEDED_SEARCH else None


def _bps(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value * 1e4:.2f} bps"
