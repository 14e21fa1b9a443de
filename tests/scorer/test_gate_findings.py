"""Cases the gate once got wrong: each test here failed before the fix it guards."""

import numpy as np
import pandas as pd
import pytest

from scorer.gate import evaluate_gate
from scorer.report import Verdict
from scorer.settings import GateSettings
from tests.scorer.test_gate import DAYS, gate, rows, skilled


def test_fixed_mode_decides_once_at_the_horizon_and_later_days_report_it():
    # no edge for the first 120 days, a large one afterwards: a re-test on day 300 would pass
    champion = skilled(300, 0.0005, seed=70)
    challenger = champion + np.r_[skilled(120, 0.0, sd=0.004, seed=71), np.full(180, 0.004)]
    challenger[130:] += skilled(170, 0.0, sd=0.004, seed=72)
    at_horizon = gate({"champ": rows(champion[:120]), "c": rows(challenger[:120])}, mode="fixed")
    later = gate({"champ": rows(champion), "c": rows(challenger)}, mode="fixed")
    first, last = at_horizon.report("c"), later.report("c")
    assert first.verdict is Verdict.FAIL and last.verdict is Verdict.FAIL
    assert last.pvalue == first.pvalue and last.paired_days == 300
    assert last.decided_on_day == 120 and "decided on paired day 120" in last.reasons[0]


@pytest.mark.parametrize("offset", [1e-5, 1e-4, 1e-3])
def test_a_constant_offset_with_rounding_noise_is_degenerate(offset):
    champion = skilled(200, 0.001, seed=73)
    report = gate({"champ": rows(champion), "c": rows(champion + offset)}).report("c")
    assert report.verdict is Verdict.DEGENERATE
    assert "almost surely a bug" in report.reasons[0]


def test_subnormal_differences_are_a_tie_not_a_pass():
    champion = skilled(200, 0.001, seed=74)
    challenger = champion.copy()
    challenger[::3] = np.nextafter(challenger[::3], np.inf)  # differences at the last bit
    report = gate({"champ": rows(champion), "c": rows(challenger)}).report("c")
    assert report.verdict is Verdict.TIE


def test_passers_are_compared_on_their_common_days():
    # "long" ran 250 days; "late" only the last 80, in a strong market: on those 80 days "long"
    # earned more, though "late"'s mean over its own window is higher
    champion = skilled(250, 0.0, sd=0.002, seed=75)
    boom = np.r_[np.zeros(170), np.full(80, 0.01)]
    long = champion + 0.004 + boom + skilled(250, 0.0, sd=0.001, seed=76)
    late = champion + 0.003 + boom + skilled(250, 0.0, sd=0.001, seed=77)
    decision = gate(
        {"champ": rows(champion), "long": rows(long), "late": rows(late[170:], DAYS[170:250])},
        trial_sharpes=[0.0, 0.05, 0.1],
    )
    assert decision.passed("long") and decision.passed("late")
    assert decision.report("late").mean_net > decision.report("long").mean_net
    assert decision.winner == "long"
    assert "on the 80 days every passing challenger was scored" in decision.winner_reason


@pytest.mark.parametrize("mode", ["fixed", "anytime", "group_sequential"])
def test_overflowing_statistics_are_refused_not_raised(mode):
    champion = skilled(150, 0.0, seed=78) * 1e156
    challenger = skilled(150, 0.002, seed=79) * 1e156
    report = gate({"champ": rows(champion), "c": rows(challenger)}, mode=mode).report("c")
    assert report.verdict is Verdict.FAIL
    assert "too large" in report.reasons[0]


def test_challengers_retired_in_the_window_still_count_for_multiplicity():
    champion, challenger = skilled(200, 0.0005, seed=3), skilled(200, 0.0033, seed=4)
    retired = {f"r{i}": rows(skilled(100, 0.001, seed=80 + i)) for i in range(9)}
    daily = {"champ": rows(champion), "c": rows(challenger), **retired}

    def report(tried):
        return evaluate_gate(
            daily,
            champion="champ",
            challengers=["c"],
            tried=tried,
            settings=GateSettings(mode="anytime"),
            spa_reps=0,
        ).report("c")

    alone, after_nine = report([]), report(list(retired))
    assert alone.k_active == 1 and after_nine.k_active == 10
    assert alone.verdict is Verdict.PASS and after_nine.verdict is Verdict.FAIL


def test_versions_tried_before_the_window_do_not_count():
    champion, challenger = skilled(200, 0.0005, seed=3), skilled(200, 0.0025, seed=4)
    old = rows(skilled(50, 0.001, seed=90))  # scored on days 0..49 only
    decision = evaluate_gate(
        {"champ": rows(champion), "c": rows(challenger), "old": old},
        champion="champ",
        challengers=["c"],
        tried=["old"],
        since=DAYS[60],
        settings=GateSettings(),
        spa_reps=0,
    )
    assert decision.k_active == 1


def test_the_superiority_boundary_allows_for_the_variance_being_estimated():
    # the long-run variance from 60 days is noisy: the boundary is a Student-t quantile, wider
    # than the normal one, with the effective degrees of freedom of the Bartlett estimator
    champion, challenger = skilled(60, 0.0005, seed=3), skilled(60, 0.003, seed=4)
    report = gate({"champ": rows(champion), "c": rows(challenger)}, mode="anytime").report("c")
    check = next(rule for rule in report.rules if rule.rule == "superiority")
    assert check.detail.endswith("Student-t with 15 degrees of freedom).")


@pytest.mark.parametrize(
    "other",
    [
        pd.Index([d.strftime("%Y-%m-%d") for d in DAYS[:100]]),
        DAYS[:100].tz_localize("UTC"),
        pd.RangeIndex(100),
    ],
)
def test_a_date_index_of_another_type_is_an_error(other):
    champion, challenger = skilled(100, 0.0005, seed=3), skilled(100, 0.003, seed=4)
    with pytest.raises(ValueError, match="cannot be paired by day") as raised:
        gate({"champ": rows(champion), "c": rows(challenger, days=other)})
    assert "version c" in str(raised.value) and "version champ" in str(raised.value)
