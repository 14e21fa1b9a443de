"""The anytime boundary: a normal mixture centred on the planned edge, solved for its level."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq
from scipy.stats import norm, truncnorm
from statsmodels.stats.power import NormalIndPower

from scorer.confidence_sequence import (
    first_passing_day,
    log_mixture_martingale,
    one_sided_mixture_boundary,
    planned_edge,
)


@pytest.mark.parametrize(("level", "t_opt"), [(0.05, 243), (0.005, 120), (0.01, 968)])
def test_planned_edge_is_what_a_one_look_test_on_t_opt_days_detects_with_80_percent_power(
    level, t_opt
):
    edge = planned_edge(level, t_opt)
    days = NormalIndPower().solve_power(
        effect_size=edge, alpha=level, power=0.8, ratio=0, alternative="larger"
    )
    assert days == pytest.approx(t_opt, rel=1e-6)


def martingale_by_quadrature(score, t, centre, spread):
    """∫₀^∞ exp(λs − λ²t/2) · truncated-normal(λ; centre, spread) dλ, integrated numerically."""
    prior = truncnorm(-centre / spread, math.inf, loc=centre, scale=spread)

    def integrand(lam):
        return math.exp(lam * score - lam * lam * t / 2 + prior.logpdf(lam))

    upper = centre + 40 * spread
    value, _ = quad(integrand, 0, upper, points=[centre], epsabs=0, epsrel=1e-12, limit=200)
    return value


@pytest.mark.parametrize(("score", "t"), [(0.0, 60), (25.0, 120), (40.0, 400), (-5.0, 30)])
def test_the_closed_form_martingale_is_the_mixture_integral(score, t):
    centre, spread = 0.16, 0.04
    expected = martingale_by_quadrature(score, t, centre, spread)
    got = math.exp(float(log_mixture_martingale(score, t, centre, spread)))
    assert got == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize(
    ("t", "level", "t_opt"), [(60, 0.05, 120), (250, 0.005, 120), (30, 0.01, 400), (2, 0.05, 120)]
)
def test_the_boundary_is_where_the_mixture_reaches_one_over_the_level(t, level, t_opt):
    centre = planned_edge(level, t_opt)
    expected = brentq(
        lambda s: math.log(martingale_by_quadrature(s, t, centre, centre / 4)) + math.log(level),
        1e-6,
        10 * math.sqrt(t),
    )
    assert one_sided_mixture_boundary(t, level, t_opt) == pytest.approx(expected / t, rel=1e-7)
    days = np.array([t, t + 1])
    assert one_sided_mixture_boundary(days, level, t_opt)[0] == pytest.approx(expected / t)


def test_the_boundary_is_wider_than_one_look_and_tightest_near_the_plan():
    t = np.arange(10, 5000)
    z = one_sided_mixture_boundary(t, 0.05, 243) * np.sqrt(t)
    assert np.all(z > norm.isf(0.05))  # the price of checking every day
    assert 243 / 2 <= t[np.argmin(z)] <= 2 * 243
    assert np.all(np.diff(z / np.sqrt(t)) < 0)  # the bound on the mean still shrinks


def test_the_boundary_holds_its_level_for_a_random_walk():
    # Ville: P(the walk ever crosses) ≤ a; 4000 Gaussian walks of 2000 steps
    level, t_opt, days = 0.05, 120, np.arange(1, 2001)
    walks = np.cumsum(np.random.default_rng(11).normal(size=(4000, days.size)), axis=1)
    crossed = (walks / days >= one_sided_mixture_boundary(days, level, t_opt)).any(axis=1)
    rate = crossed.mean()
    assert rate <= level + 3 * math.sqrt(level * (1 - level) / 4000)
    assert rate > level / 2  # the level is spent, not wasted


def test_first_passing_day_finds_the_first_day_an_increasing_edge_is_positive():
    assert first_passing_day(lambda t: t - 137.5, from_day=60, last_day=1000) == 138
    assert first_passing_day(lambda t: t - 10, from_day=60, last_day=1000) == 60
    assert first_passing_day(lambda t: t - 2000, from_day=60, last_day=1000) is None


def test_invalid_plans_are_rejected():
    with pytest.raises(ValueError, match="level"):
        planned_edge(0.0, 120)
    with pytest.raises(ValueError, match="level"):
        one_sided_mixture_boundary(60, 0.5, 120)
    with pytest.raises(ValueError, match="t_opt"):
        planned_edge(0.05, 0)
