"""The normal-mixture boundaries: ρ² tightest at t_opt; the one-sided one solves its integral."""

import math

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.optimize import brentq, minimize_scalar

from scorer.confidence_sequence import (
    first_passing_day,
    mixture_boundary,
    mixture_rho2,
    one_sided_mixture_boundary,
)


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


def one_sided_by_quadrature(t, level, t_opt):
    """Solve ∫₀^∞ exp(λs − λ²t/2)·half-normal(λ; ρ) dλ = 1/a for s, integrating numerically."""
    rho = math.sqrt(mixture_rho2(2 * level, t_opt))

    def martingale(score):
        def integrand(lam):
            return math.exp(lam * score - lam * lam * t / 2 - lam * lam / (2 * rho * rho))

        value, _ = quad(integrand, 0, math.inf, epsabs=0, epsrel=1e-12)
        return value * 2 / math.sqrt(2 * math.pi * rho * rho)

    return brentq(lambda s: math.log(martingale(s)) + math.log(level), 1e-6, 20 * math.sqrt(t)) / t


@pytest.mark.parametrize(
    ("t", "level", "t_opt"), [(60, 0.05, 120), (250, 0.005, 120), (30, 0.01, 400)]
)
def test_one_sided_boundary_solves_the_half_normal_mixture(t, level, t_opt):
    expected = one_sided_by_quadrature(t, level, t_opt)
    assert one_sided_mixture_boundary(t, level, t_opt) == pytest.approx(expected, rel=1e-7)


def test_one_sided_boundary_lies_between_the_two_sided_ones_at_a_and_2a():
    days = np.arange(20, 2000, 7)
    one_sided = one_sided_mixture_boundary(days, 0.01, 120)
    assert np.all(one_sided < mixture_boundary(days, 0.01, 120))
    assert np.all(one_sided >= mixture_boundary(days, 0.02, 120) * (1 - 1e-12))


def test_one_sided_boundary_holds_its_level_for_a_random_walk():
    # Ville: P(the walk ever crosses) ≤ a; checked on 4000 Gaussian walks of 2000 steps
    level, t_opt, days = 0.05, 120, np.arange(1, 2001)
    walks = np.cumsum(np.random.default_rng(11).normal(size=(4000, days.size)), axis=1)
    crossed = (walks / days >= one_sided_mixture_boundary(days, level, t_opt)).any(axis=1)
    rate = crossed.mean()
    assert rate <= level + 3 * math.sqrt(level * (1 - level) / 4000)
    assert rate > level / 3  # and is not needlessly wide


def test_first_passing_day_finds_the_first_day_an_increasing_edge_is_positive():
    assert first_passing_day(lambda t: t - 137.5, from_day=60, last_day=1000) == 138
    assert first_passing_day(lambda t: t - 10, from_day=60, last_day=1000) == 60
    assert first_passing_day(lambda t: t - 2000, from_day=60, last_day=1000) is None


def test_invalid_levels_are_rejected():
    with pytest.raises(ValueError, match="level"):
        mixture_rho2(0.0, 120)
