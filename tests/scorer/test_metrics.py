"""Version metrics against hand computation and quantstats."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import quantstats.stats as qs

from scorer.metrics import cumulative_net, version_metrics


def daily_rows(net, gross=None, turnover=None, cost=None, rank_ic=None):
    n = len(net)
    return pd.DataFrame(
        {
            "gross": gross if gross is not None else net,
            "turnover": turnover if turnover is not None else [0.0] * n,
            "cost": cost if cost is not None else [0.0] * n,
            "net": net,
            "rank_ic": rank_ic if rank_ic is not None else [np.nan] * n,
        },
        index=pd.bdate_range("2024-01-01", periods=n, name="day"),
    )


def test_hand_worked_metrics():
    rows = daily_rows(
        net=[0.01, -0.02, 0.03, 0.0],
        gross=[0.012, -0.018, 0.031, 0.001],
        turnover=[2.0, 2.0, 1.0, 1.0],
        cost=[0.002, 0.002, 0.001, 0.001],
        rank_ic=[0.1, np.nan, 0.3, -0.1],
    )
    metrics = version_metrics(rows)
    assert metrics.days == 4
    assert metrics.mean_net == pytest.approx(0.005)
    assert metrics.mean_gross == pytest.approx(0.0065)
    # cumulative net 0.01, -0.01, 0.02, 0.02: the worst fall from a peak is 0.01 → -0.01
    assert metrics.max_drawdown == pytest.approx(0.02)
    assert metrics.hit_rate == pytest.approx(0.5)
    assert metrics.mean_turnover == pytest.approx(1.5)
    assert metrics.cost_drag == pytest.approx(0.0015)
    assert metrics.mean_rank_ic == pytest.approx(0.1)
    assert metrics.breakeven_cost_bps == pytest.approx(1e4 * 0.0065 / 1.5)
    sd = math.sqrt(sum((x - 0.005) ** 2 for x in [0.01, -0.02, 0.03, 0.0]) / 3)
    assert metrics.net_volatility == pytest.approx(sd * math.sqrt(252))


def test_sharpe_and_volatility_match_quantstats():
    rng = np.random.default_rng(5)
    net = rng.normal(0.0004, 0.01, 300)
    metrics = version_metrics(daily_rows(net))
    returns = pd.Series(net, index=pd.bdate_range("2024-01-01", periods=300))
    assert metrics.net_sharpe == pytest.approx(qs.sharpe(returns, periods=252), rel=1e-12)
    assert metrics.net_volatility == pytest.approx(qs.volatility(returns, periods=252), rel=1e-12)


def test_drawdown_from_the_start_counts_a_first_loss():
    assert version_metrics(daily_rows([-0.01, -0.02, 0.005])).max_drawdown == pytest.approx(0.03)


def test_no_turnover_has_no_breakeven_and_one_day_has_no_sharpe():
    metrics = version_metrics(daily_rows([0.01]))
    assert metrics.breakeven_cost_bps is None
    assert metrics.net_sharpe is None and metrics.net_volatility is None
    assert metrics.mean_rank_ic is None
    json.dumps(metrics.to_dict(), allow_nan=False)


def test_no_days_gives_empty_metrics():
    metrics = version_metrics(daily_rows([]))
    assert metrics.days == 0 and metrics.mean_net is None


def test_cumulative_net_sums_daily_net():
    assert cumulative_net(daily_rows([0.01, -0.02, 0.03])).tolist() == pytest.approx(
        [0.01, -0.01, 0.02]
    )
