"""PSR against quantstats; the DSR against docs/gate.md's reference vector."""

import math

import numpy as np
import pandas as pd
import pytest
import quantstats.stats as qs
from scipy.stats import kurtosis, skew

from scorer.sharpe import (
    SharpeMoments,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
    sharpe_moments,
    trial_variance,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_psr_at_zero_matches_quantstats(seed):
    rng = np.random.default_rng(seed)
    # skewed, fat-tailed daily returns so that γ₃ and γ₄ matter
    net = 0.0004 + 0.01 * (rng.standard_t(5, 400) - 0.3 * rng.exponential(1.0, 400))
    moments = sharpe_moments(net)
    ours = probabilistic_sharpe_ratio(
        moments.sharpe, 0.0, moments.n_days, moments.skewness, moments.kurtosis
    )
    returns = pd.Series(net, index=pd.bdate_range("2023-01-02", periods=400))
    assert ours == pytest.approx(qs.probabilistic_sharpe_ratio(returns), abs=1e-12)
    assert moments.kurtosis == pytest.approx(qs.kurtosis(returns) + 3, rel=1e-12)  # raw


def test_dsr_reference_vector():
    moments = SharpeMoments(sharpe=2.5 / math.sqrt(250), skewness=-3, kurtosis=10, n_days=1250)
    variance = 0.5 / 250
    assert expected_max_sharpe(100, variance) == pytest.approx(0.1131720, abs=5e-7)
    benchmark = expected_max_sharpe(100, variance)
    dsr = probabilistic_sharpe_ratio(moments.sharpe, benchmark, 1250, -3, 10)
    assert dsr == pytest.approx(0.9003968, abs=5e-7)


def test_dsr_uses_the_trial_sharpes_variance():
    moments = SharpeMoments(sharpe=2.5 / math.sqrt(250), skewness=-3, kurtosis=10, n_days=1250)
    # two trial Sharpes whose sample variance (ddof = 1) is 0.5/250
    spread = math.sqrt(0.5 / 250 / 2)
    trials = [0.1 - spread, 0.1 + spread]
    assert trial_variance(trials, 1250) == pytest.approx(0.5 / 250)
    assert deflated_sharpe_ratio(moments, 100, trials) == pytest.approx(0.9003968, abs=5e-7)


def test_variance_floor_and_a_single_trial():
    assert trial_variance([0.1, 0.1], 101) == pytest.approx(1 / 100)
    assert trial_variance(None, 101) == pytest.approx(1 / 100)
    assert expected_max_sharpe(1, 0.5) == 0.0


def test_more_trials_deflate_more():
    moments = SharpeMoments(sharpe=0.12, skewness=0.0, kurtosis=3.0, n_days=500)
    dsrs = [deflated_sharpe_ratio(moments, n) for n in (1, 10, 100, 1000)]
    assert dsrs == sorted(dsrs, reverse=True) and dsrs[0] > dsrs[-1] + 0.1


def test_undefined_moments_give_nan_not_an_error():
    assert math.isnan(deflated_sharpe_ratio(sharpe_moments(np.full(100, 0.001)), 5))
    assert math.isnan(deflated_sharpe_ratio(sharpe_moments(np.array([0.01, 0.02])), 5))


@pytest.mark.parametrize("n_days", [4, 30, 500])
def test_moments_match_scipys_bias_corrected_estimators(n_days):
    returns = np.random.default_rng(n_days).standard_t(4, n_days) * 0.01
    moments = sharpe_moments(returns)
    assert moments.skewness == pytest.approx(skew(returns, bias=False), rel=1e-9)
    expected = kurtosis(returns, fisher=False, bias=False)
    assert moments.kurtosis == pytest.approx(expected, rel=1e-9)
