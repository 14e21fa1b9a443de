"""Diebold–Mariano against statsmodels; Hansen's SPA against arch.

arch's `SPA.compute()` does not studentize (it estimates the variances but compares raw means),
so the studentized cross-check hands arch loss differences already divided by ω̂_k: its raw
maximum is then Hansen's studentized statistic, with the same re-centring.
"""

import numpy as np
import pytest
from arch.bootstrap import SPA
from statsmodels.tsa.stattools import diebold_mariano_test

from scorer.diebold_mariano import diebold_mariano
from scorer.newey_west import bartlett_lags
from scorer.spa import bootstrap_long_run_variance, spa_pvalue, stationary_bootstrap_indices


def net_returns(n_days, edges, scales, seed):
    rng = np.random.default_rng(seed)
    champion = rng.normal(0.0003, 0.01, n_days)
    challengers = np.column_stack(
        [
            champion + rng.normal(edge, scale, n_days)
            for edge, scale in zip(edges, scales, strict=True)
        ]
    )
    return champion, challengers


@pytest.mark.parametrize(("n_days", "edge"), [(60, 0.001), (250, 0.0005), (800, -0.0002)])
def test_diebold_mariano_matches_statsmodels(n_days, edge):
    champion, challengers = net_returns(n_days, [edge], [0.008], seed=n_days)
    challenger = challengers[:, 0]
    lags = bartlett_lags(n_days)
    # losses are −net, so d = loss(champion) − loss(challenger) = net(challenger) − net(champion)
    reference = diebold_mariano_test(
        np.zeros(n_days),
        champion,
        challenger,
        criterion=lambda y, forecast: -forecast,
        lags=lags,
        harvey_adj=True,
    )
    ours = diebold_mariano(challenger - champion)
    assert ours.lags == lags
    assert ours.statistic == pytest.approx(reference.statistic, rel=1e-9)
    assert ours.pvalue == pytest.approx(reference.pvalue, rel=1e-9)
    assert ours.pvalue_greater == pytest.approx(
        reference.pvalue / 2 if ours.statistic > 0 else 1 - reference.pvalue / 2, rel=1e-9
    )


def test_stationary_bootstrap_blocks_have_the_right_mean_length():
    indices = stationary_bootstrap_indices(500, 10, 200, np.random.default_rng(0))
    continuing = np.diff(indices, axis=1) % 500 == 1
    assert 1 / (1 - continuing.mean()) == pytest.approx(10, rel=0.05)
    assert indices.min() >= 0 and indices.max() < 500


def test_bootstrap_variance_matches_arch():
    champion, challengers = net_returns(200, [0.0, 0.0005], [0.005, 0.02], seed=3)
    spa = SPA(-champion, -challengers, block_size=14, reps=10, seed=0)
    spa.compute()
    np.testing.assert_allclose(
        bootstrap_long_run_variance(challengers - champion[:, None], 14),
        spa._loss_diff_var,
        rtol=1e-10,
    )


# A middling case: one useful challenger with a noisy difference, two useless ones, one bad one.
EDGES, SCALES = [0.0012, 0.0, 0.0002, -0.003], [0.02, 0.004, 0.01, 0.006]


def test_unstudentized_spa_matches_arch_within_bootstrap_error():
    champion, challengers = net_returns(250, EDGES, SCALES, seed=22)
    reference = SPA(-champion, -challengers, block_size=15, reps=4000, seed=1)
    reference.compute()
    expected = reference.pvalues["consistent"]
    ours = spa_pvalue(challengers - champion[:, None], reps=4000, block_size=15, studentize=False)
    assert 0.02 < expected < 0.98  # the comparison is informative
    assert ours == pytest.approx(expected, abs=0.035)


def test_studentized_spa_matches_arch_on_studentized_differences():
    champion, challengers = net_returns(250, EDGES, SCALES, seed=22)
    d = challengers - champion[:, None]
    omega = np.sqrt(bootstrap_long_run_variance(d, 15))
    reference = SPA(np.zeros(250), -(d / omega), block_size=15, reps=4000, seed=2)
    reference.compute()
    expected = reference.pvalues["consistent"]
    ours = spa_pvalue(d, reps=4000, block_size=15, seed=3)
    assert 0.02 < expected < 0.98
    assert ours == pytest.approx(expected, abs=0.035)
    unstudentized = spa_pvalue(d, reps=4000, block_size=15, seed=3, studentize=False)
    assert abs(unstudentized - ours) > 0.05  # studentizing matters here


def test_spa_finds_a_clearly_better_challenger():
    champion, challengers = net_returns(250, [0.004, 0.0], [0.01, 0.01], seed=5)
    assert spa_pvalue(challengers - champion[:, None], seed=0) < 0.01
    champion, challengers = net_returns(250, [0.0, 0.0], [0.01, 0.01], seed=6)
    assert spa_pvalue(challengers - champion[:, None], seed=0) > 0.05
