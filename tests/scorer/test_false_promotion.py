"""Monte Carlo: with no true difference, checking every day with several challengers, the gate's
superiority rule promotes noise at most α of the time (plus sampling error); a naive rule would
promote far more often.

Condition 2 alone is simulated: the gate also needs enough days and a DSR, which can only remove
promotions, so this bounds the gate's false-promotion rate from above. The statistics are the
gate's own (`newey_west_variance`, `mixture_boundary`, `ewc_test`, `holm_adjust`), vectorised over
runs; `test_the_gate_agrees_with_the_simulated_rule` ties them to `evaluate_gate` itself.
"""

import math

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from scorer.confidence_sequence import mixture_boundary
from scorer.ewc import ewc_test
from scorer.gate import evaluate_gate
from scorer.multiplicity import holm_adjust
from scorer.newey_west import bartlett_lags, newey_west_variance
from scorer.settings import GateSettings

RUNS, CHALLENGERS, DAYS, ALPHA, MIN_DAYS, HORIZON = 2000, 5, 250, 0.05, 60, 120


def null_differences(seed):
    """[DAYS, RUNS, CHALLENGERS] daily net differences; every version has the same expected net.

    AR(1) noise (φ = 0.2) in each version's net; challengers share the champion's noise, so their
    differences are correlated with each other as in real use.
    """
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0, 0.01, (DAYS, RUNS, CHALLENGERS + 1))
    net = np.empty_like(shocks)
    net[0] = shocks[0]
    for day in range(1, DAYS):
        net[day] = 0.2 * net[day - 1] + shocks[day]
    return net[:, :, 1:] - net[:, :, :1]


def sampling_allowance(rate, runs):
    return 3 * math.sqrt(rate * (1 - rate) / runs)


def test_anytime_gate_checked_daily_keeps_false_promotions_at_alpha():
    d = null_differences(seed=2024).reshape(DAYS, -1)
    level = ALPHA / CHALLENGERS
    promoted = np.zeros(d.shape[1], dtype=bool)
    naive = np.zeros(d.shape[1], dtype=bool)
    for day in range(MIN_DAYS, DAYS + 1):
        window = d[:day]
        mean = window.mean(axis=0)
        sigma = np.sqrt(newey_west_variance(window, bartlett_lags(day)))
        promoted |= mean - sigma * mixture_boundary(day, level, HORIZON) > 0
        # naive: a one-sided t-test at α, no correction for peeking or for several challengers
        t_stat = mean / (window.std(axis=0, ddof=1) / math.sqrt(day))
        naive |= t_stat > student_t.ppf(1 - ALPHA, day - 1)
    rate = promoted.reshape(RUNS, CHALLENGERS).any(axis=1).mean()
    naive_rate = naive.reshape(RUNS, CHALLENGERS).any(axis=1).mean()
    print(f"\nfalse promotions, checked daily: gate {rate:.3f}, naive t-test {naive_rate:.3f}")
    assert rate <= ALPHA + sampling_allowance(ALPHA, RUNS)
    assert naive_rate > 4 * ALPHA  # what the gate protects against


def test_fixed_gate_with_holm_keeps_false_promotions_at_alpha():
    d = null_differences(seed=7)[:HORIZON]
    promoted = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        pvalues = [ewc_test(d[:, run, c]).pvalue for c in range(CHALLENGERS)]
        promoted[run] = (holm_adjust(pvalues, CHALLENGERS) <= ALPHA).any()
    rate = promoted.mean()
    print(f"\nfalse promotions, fixed horizon with Holm: {rate:.3f}")
    assert rate <= ALPHA + sampling_allowance(ALPHA, RUNS)


def test_the_gate_agrees_with_the_simulated_rule():
    d = null_differences(seed=3)[:, :8, 0] + 0.003  # a real edge, so some checks pass
    days = pd.bdate_range("2024-01-01", periods=DAYS)
    outcomes = set()
    for run in range(8):
        champion = np.random.default_rng(run).normal(0.002, 0.01, DAYS)
        daily = {}
        for vid, net in (("champ", champion), ("c", champion + d[:, run])):
            daily[vid] = pd.DataFrame(
                {"gross": net, "turnover": 0.0, "cost": 0.0, "net": net}, index=days
            )
        for day in (MIN_DAYS, 90, 150):
            window = {vid: rows.iloc[:day] for vid, rows in daily.items()}
            report = evaluate_gate(
                window,
                champion="champ",
                challengers=["c"],
                k_active=CHALLENGERS,
                settings=GateSettings(min_dsr=0.0),
                spa_reps=0,
            ).report("c")
            diff = np.diff(np.stack([window["champ"]["net"], window["c"]["net"]]), axis=0)[0]
            sigma = math.sqrt(newey_west_variance(diff))
            bound = diff.mean() - sigma * mixture_boundary(day, ALPHA / CHALLENGERS, HORIZON)
            assert report.passed == (bound > 0)
            outcomes.add(report.passed)
    assert outcomes == {True, False}  # both sides of the rule were exercised
