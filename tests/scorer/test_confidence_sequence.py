"""The normal-mixture boundary: its ρ² is the one that makes it tightest at t_opt."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

from scorer.confidence_sequence import days_needed, mixture_boundary, mixture_rho2


def boundary_by_hand(t, rho2, level):
    return math.sqrt(
        2 * (t * rho2 + 1) / (t * t * rho2) * math.log(math.sqrt(t * rho2 + 1) / level)
    )


@pytest.mark.parametrize(("level", "t_opt"), [(0.05, 120), (0.005, 120), (0.0125, 250)])
def test_rho2_solves_gate_md_lambert_equation(level, t_opt):
    # docs/gate.md: ρ² = (−W₋₁(z) − 1)/t_opt, z = −a²·e^{a²−1}; W₋₁(z): root w < −1 of w·eʷ = z
    z = -(level**2) * math.exp(level**2 - 1)
    w = brentq(lambda w: w * math.exp(w) - z, -60.0, -1.0, xtol=1e-14)
    assert mixture_rho2(level, t_opt) == pytest.approx((-w - 1) / t_opt, rel=1e-10)


@pytest.mark.parametrize(("level", "t_opt"), [(0.05, 120), (0.005, 120), (0.0125, 250)])
def test_rho2_makes_the_boundary_all_but_tightest_at_t_opt(level, t_opt):
    best = minimize_scalar(
        lambda log_rho2: boundary_by_hand(t_opt, math.exp(log_rho2), level),
        bounds=(-20, 5),
        method="bounded",
        options={"xatol": 1e-12},
    )
    rho2 = mixture_rho2(level, t_opt)
    at_rho2 = boundary_by_hand(t_opt, rho2, level)
    # docs/gate.md's e^{a²} factor moves ρ² off the exact minimiser by O(a²): negligible in m(t_opt)
    assert at_rho2 == pytest.approx(best.fun, rel=1e-6)
    assert at_rho2 < boundary_by_hand(t_opt, rho2 * 1.1, level)
    assert at_rho2 < boundary_by_hand(t_opt, rho2 / 1.1, level)


def test_boundary_matches_the_formula_and_shrinks():
    level, t_opt = 0.01, 120
    rho2 = mixture_rho2(level, t_opt)
    days = np.array([60, 120, 250, 1000])
    expected = [boundary_by_hand(t, rho2, level) for t in days]
    np.testing.assert_allclose(mixture_boundary(days, level, t_opt), expected, rtol=1e-12)
    assert np.all(np.diff(mixture_boundary(days, level, t_opt)) < 0)


def test_anytime_boundary_is_wider_than_a_one_look_z_bound():
    # the price of checking every day: m(t)·sqrt(t) exceeds z_{1−a} at every t
    from scipy.stats import norm

    t = np.arange(10, 2000)
    assert np.all(mixture_boundary(t, 0.05, 120) * np.sqrt(t) > norm.ppf(0.95))


def test_days_needed_is_the_first_day_the_bound_clears_the_margin():
    mean, sigma, level, t_opt = 0.001, 0.01, 0.01, 120
    needed = days_needed(mean, sigma, 0.0, level, t_opt, from_day=60)
    assert mean - sigma * mixture_boundary(needed, level, t_opt) > 0
    assert mean - sigma * mixture_boundary(needed - 1, level, t_opt) <= 0
    assert days_needed(-0.001, sigma, 0.0, level, t_opt, from_day=60) is None


def test_invalid_levels_are_rejected():
    with pytest.raises(ValueError, match="level"):
        mixture_rho2(0.0, 120)
