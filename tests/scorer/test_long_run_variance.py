"""Newey–West against arch's Bartlett kernel; EWC against a DCT."""

import math

import numpy as np
import pytest
from arch.covariance.kernel import Bartlett
from scipy.fft import dct
from scipy.stats import norm
from scipy.stats import t as student_t

from scorer.ewc import ewc_dof, ewc_test
from scorer.newey_west import (
    bartlett_lags,
    effective_dof,
    long_run_variance,
    newey_west_variance,
    prewhitened_variance,
    studentized,
)


def ar1(n, phi, seed):
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=n)
    x = np.empty(n)
    x[0] = noise[0]
    for t in range(1, n):
        x[t] = phi * x[t - 1] + noise[t]
    return 0.001 * x + 0.0002


@pytest.mark.parametrize(("n_days", "expected"), [(60, 3), (100, 4), (250, 4), (1000, 6)])
def test_bandwidth_rule(n_days, expected):
    assert bartlett_lags(n_days) == expected


@pytest.mark.parametrize("n_days", [30, 120, 250, 1000])
@pytest.mark.parametrize("phi", [0.0, 0.4, -0.3])
def test_newey_west_matches_arch_bartlett(n_days, phi):
    d = ar1(n_days, phi, seed=n_days)
    lags = bartlett_lags(n_days)
    expected = Bartlett(d, bandwidth=lags).cov.long_run[0, 0]
    assert newey_west_variance(d) == pytest.approx(expected, rel=1e-10)


def test_newey_west_per_column():
    d = np.column_stack([ar1(200, 0.2, 1), ar1(200, 0.5, 2)])
    for column in range(2):
        expected = Bartlett(d[:, column], bandwidth=7).cov.long_run[0, 0]
        assert newey_west_variance(d, 7)[column] == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("n_days", [40, 121, 500])
def test_ewc_matches_a_type_two_dct(n_days):
    d = ar1(n_days, 0.3, seed=9) - 0.0001
    margin = 0.00005
    dof = max(2, math.floor(0.4 * n_days ** (2 / 3)))
    # DCT-II: y_j = 2 Σ_n x_n cos(π j (2n+1) / 2N), n = t − 1
    projections = math.sqrt(2 / n_days) * dct(d, type=2)[1 : dof + 1] / 2
    omega = np.mean(projections**2)
    statistic = math.sqrt(n_days) * (d.mean() - margin) / math.sqrt(omega)
    result = ewc_test(d, margin)
    assert result.dof == dof == ewc_dof(n_days)
    assert result.statistic == pytest.approx(statistic, rel=1e-9)
    assert result.pvalue == pytest.approx(student_t.sf(statistic, dof), rel=1e-9)


def test_ewc_is_unmoved_by_a_constant_shift_in_its_variance():
    d = ar1(150, 0.1, seed=4)
    assert ewc_test(d).long_run_variance == pytest.approx(
        ewc_test(d + 0.01).long_run_variance, rel=1e-6
    )


def test_prewhitening_recovers_the_long_run_variance_of_an_ar1_series():
    # AR(1) φ = 0.3 with unit shocks: Ω = 1/(1 − φ)² ≈ 2.04; plain Bartlett with L = 4 is low
    x = (ar1(200_000, 0.3, seed=8) - 0.0002) / 0.001
    truth = 1 / (1 - 0.3) ** 2
    assert prewhitened_variance(x, lags=4) == pytest.approx(truth, rel=0.03)
    assert newey_west_variance(x, lags=4) < 0.9 * truth


def test_long_run_variance_undoes_the_centring_share():
    x = ar1(120, 0.0, seed=9)
    keep = 1 - (bartlett_lags(120) + 1) / 120
    assert long_run_variance(x) == pytest.approx(prewhitened_variance(x) / keep, rel=1e-12)


@pytest.mark.parametrize(("n_days", "expected"), [(60, 15), (120, 24), (250, 50)])
def test_effective_degrees_of_freedom(n_days, expected):
    assert effective_dof(n_days) == expected


def test_studentized_boundary_has_the_normal_tail_under_student_t():
    z = 2.5
    widened = studentized(z, 60)
    assert student_t.sf(widened, effective_dof(60)) == pytest.approx(norm.sf(z), rel=1e-10)
    assert widened > z and studentized(math.inf, 60) == math.inf
