"""Group-sequential boundaries against published values and against a Monte Carlo."""

import math

import numpy as np
import pytest
from scipy.stats import norm

from scorer.spending import daily_boundaries, group_sequential_boundaries, obrien_fleming_spending

# Lan–DeMets O'Brien–Fleming-type spending, one-sided α = 0.025, equally spaced looks: the
# published boundaries (four decimals, as R's gsDesign with sfLDOF prints them)
PUBLISHED = {
    3: [3.7103, 2.5114, 1.9930],
    4: [4.3326, 2.9631, 2.3590, 2.0141],
    5: [4.8769, 3.3569, 2.6803, 2.2898, 2.0310],
}


@pytest.mark.parametrize("looks", sorted(PUBLISHED))
def test_boundaries_match_published_values(looks):
    fractions = np.arange(1, looks + 1) / looks
    computed = group_sequential_boundaries(fractions, 0.025)
    np.testing.assert_allclose(computed, PUBLISHED[looks], atol=3e-4)


def test_a_single_look_is_the_fixed_sample_test():
    assert group_sequential_boundaries(np.array([1.0]), 0.05)[0] == pytest.approx(norm.isf(0.05))


def test_spending_reaches_alpha_at_the_horizon_and_grows():
    fractions = np.linspace(0.01, 1, 100)
    spent = obrien_fleming_spending(fractions, 0.05)
    assert spent[-1] == pytest.approx(0.05) and np.all(np.diff(spent) > 0)
    assert obrien_fleming_spending(0.0, 0.05) == 0.0


def test_daily_looks_spend_alpha_on_a_random_walk():
    # a look every day from 60 to 120: the probability of ever crossing is α, no less, no more
    level, first, horizon, runs = 0.05, 60, 120, 40_000
    bounds = np.array(daily_boundaries(level, first, horizon))
    walks = np.cumsum(np.random.default_rng(5).normal(size=(runs, horizon)), axis=1)
    days = np.arange(first, horizon + 1)
    z = walks[:, first - 1 :] / np.sqrt(days)
    rate = (z >= bounds).any(axis=1).mean()
    error = math.sqrt(level * (1 - level) / runs)
    assert abs(rate - level) < 3 * error


@pytest.mark.parametrize(
    "fractions", [np.array([0.5, 0.4, 1.0]), np.array([0.0, 1.0]), np.array([0.5, 1.2])]
)
def test_fractions_must_increase_within_the_unit_interval(fractions):
    with pytest.raises(ValueError, match="information fractions must increase"):
        group_sequential_boundaries(fractions, 0.05)
