"""Monte Carlo: with no true difference, checking every day with several challengers, the gate's
superiority rule promotes noise at most α of the time (plus sampling error), in every mode; a
naive rule would promote far more often.

Condition 2 alone is simulated: the gate also needs enough days and a DSR, which can only remove
promotions, so this bounds the gate's false-promotion rate from above. The statistics are the
gate's own (`long_run_variance`, the boundaries, `ewc_test`), vectorised over runs;
`test_the_gate_agrees_with_the_simulated_rule` ties them to `evaluate_gate` itself.
bench/gate_calibration.py measures the same rates over more cases with more runs.
"""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import t as student_t

from scorer.confidence_sequence import one_sided_mixture_boundary
from scorer.ewc import ewc_test
from scorer.gate import evaluate_gate
from scorer.newey_west import long_run_variance, studentized
from scorer.settings import GateSettings
from scorer.spending import daily_boundaries

RUNS, CHALLENGERS, DAYS, ALPHA, MIN_DAYS, HORIZON = 2000, 5, 250, 0.05, 60, 120
LEVEL = ALPHA / CHALLENGERS


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


def anytime_boundary(day):
    z = float(one_sided_mixture_boundary(day, LEVEL, HORIZON)) * math.sqrt(day)
    return studentized(z, day) / math.sqrt(day)


def group_sequential_boundary(day):
    z = daily_boundaries(LEVEL, MIN_DAYS, HORIZON)[day - MIN_DAYS]
    return studentized(z, day) / math.sqrt(day)


def lower_bounds(window, day, boundary):
    sigma = np.sqrt(long_run_variance(window))
    return window.mean(axis=0) - sigma * boundary(day)


def family_rate(promoted):
    return promoted.reshape(RUNS, CHALLENGERS).any(axis=1).mean()


def test_anytime_gate_checked_daily_keeps_false_promotions_at_alpha():
    d = null_differences(seed=2024).reshape(DAYS, -1)
    promoted = np.zeros(d.shape[1], dtype=bool)
    naive = np.zeros(d.shape[1], dtype=bool)
    for day in range(MIN_DAYS, DAYS + 1):
        window = d[:day]
        promoted |= lower_bounds(window, day, anytime_boundary) > 0
        # naive: a one-sided t-test at α, no correction for peeking or for several challengers
        t_stat = window.mean(axis=0) / (window.std(axis=0, ddof=1) / math.sqrt(day))
        naive |= t_stat > student_t.ppf(1 - ALPHA, day - 1)
    rate, naive_rate = family_rate(promoted), family_rate(naive)
    print(f"\nfalse promotions, checked daily: gate {rate:.3f}, naive t-test {naive_rate:.3f}")
    assert rate <= ALPHA + sampling_allowance(ALPHA, RUNS)
    assert naive_rate > 4 * ALPHA  # what the gate protects against


def test_group_sequential_gate_checked_daily_keeps_false_promotions_at_alpha():
    d = null_differences(seed=2025).reshape(DAYS, -1)
    promoted = np.zeros(d.shape[1], dtype=bool)
    for day in range(MIN_DAYS, HORIZON + 1):  # after the horizon the decision stands
        promoted |= lower_bounds(d[:day], day, group_sequential_boundary) > 0
    rate = family_rate(promoted)
    print(f"\nfalse promotions, group-sequential: {rate:.3f}")
    assert rate <= ALPHA + sampling_allowance(ALPHA, RUNS)


def test_fixed_gate_with_bonferroni_keeps_false_promotions_at_alpha():
    d = null_differences(seed=7)[:HORIZON]
    promoted = np.zeros(RUNS, dtype=bool)
    for run in range(RUNS):
        pvalues = [ewc_test(d[:, run, c]).pvalue for c in range(CHALLENGERS)]
        promoted[run] = min(pvalues) * CHALLENGERS <= ALPHA
    rate = promoted.mean()
    print(f"\nfalse promotions, fixed horizon with Bonferroni: {rate:.3f}")
    assert rate <= ALPHA + sampling_allowance(ALPHA, RUNS)


@pytest.mark.parametrize(
    ("mode", "boundary"), [("anytime", anytime_boundary), ("group_sequential", None)]
)
def test_the_gate_agrees_with_the_simulated_rule(mode, boundary):
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
        diff = d[:, run]
        for day in (MIN_DAYS, 75, 90, 150):
            window = {vid: rows.iloc[:day] for vid, rows in daily.items()}
            report = evaluate_gate(
                window,
                champion="champ",
                challengers=["c"],
                k_active=CHALLENGERS,
                settings=GateSettings(min_dsr=0.0, mode=mode),
                spa_reps=0,
            ).report("c")
            if boundary is None:  # group-sequential: any look up to today, or to the horizon
                looks = range(MIN_DAYS, min(day, HORIZON) + 1)
                expected = any(
                    lower_bounds(diff[:t], t, group_sequential_boundary) > 0 for t in looks
                )
            else:
                expected = lower_bounds(diff[:day], day, boundary) > 0
            assert report.passed == expected
            outcomes.add(report.passed)
    assert outcomes == {True, False}  # both sides of the rule were exercised
