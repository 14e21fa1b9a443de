"""Every verdict path of the gate, its degenerate cases, and its report."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from arch.covariance.kernel import Bartlett
from statsmodels.stats.multitest import multipletests

from scorer.confidence_sequence import one_sided_mixture_boundary
from scorer.gate import evaluate_gate
from scorer.newey_west import bartlett_lags, studentized
from scorer.report import Verdict
from scorer.settings import GateSettings

DAYS = pd.bdate_range("2024-01-01", periods=400, name="day")


def rows(net, days=None, turnover=0.5, cost=0.0005):
    net = np.asarray(net, dtype=float)
    index = DAYS[: len(net)] if days is None else days
    return pd.DataFrame(
        {
            "gross": net + cost,
            "turnover": np.full(len(net), turnover),
            "cost": np.full(len(net), cost),
            "net": net,
        },
        index=index,
    )


def skilled(n, mean=0.002, sd=0.01, seed=0):
    return np.random.default_rng(seed).normal(mean, sd, n)


def anytime_boundary(n_days, level, t_opt):
    z = one_sided_mixture_boundary(n_days, level, t_opt) * math.sqrt(n_days)
    return studentized(z, n_days) / math.sqrt(n_days)


def gate(daily, champion="champ", challengers=None, trial_sharpes=None, **settings):
    challengers = challengers or [v for v in daily if v != champion]
    return evaluate_gate(
        daily,
        champion=champion,
        challengers=challengers,
        settings=GateSettings(**settings),
        trial_sharpes=trial_sharpes,
        spa_reps=200,
    )


def test_clearly_better_challenger_passes_after_enough_days_not_before():
    champion, better = skilled(300, 0.0005, seed=1), skilled(300, 0.004, seed=2)
    early = gate({"champ": rows(champion[:40]), "c": rows(better[:40])})
    assert early.report("c").verdict is Verdict.INSUFFICIENT_DATA
    assert "40 paired days" in early.report("c").reasons[0]
    late = gate({"champ": rows(champion), "c": rows(better)})
    report = late.report("c")
    assert report.verdict is Verdict.PASS and late.passed("c") and late.winner == "c"
    assert report.paired_days == 300 and report.days_needed == 0
    assert report.dsr >= 0.95 and report.dm_statistic > 2


def prewhitened_sd_by_hand(d):
    """AR(1) prewhitening, arch's Bartlett on the residuals, recoloured, centring undone."""
    n_days, lags = len(d), bartlett_lags(len(d))
    x = d - d.mean()
    phi = np.dot(x[1:], x[:-1]) / np.dot(x[:-1], x[:-1])
    phi = min(max(phi + (1 + 3 * phi) / n_days, -0.97), 0.97)
    residuals = x[1:] - phi * x[:-1]
    omega = Bartlett(residuals, bandwidth=lags).cov.long_run[0, 0] / (1 - phi) ** 2
    return math.sqrt(omega / (1 - (lags + 1) / n_days))


def test_anytime_bound_is_mean_minus_long_run_sd_times_boundary():
    champion, challenger = skilled(200, 0.0005, seed=3), skilled(200, 0.002, seed=4)
    report = gate({"champ": rows(champion), "c": rows(challenger)}, mode="anytime").report("c")
    d = challenger - champion
    sigma = prewhitened_sd_by_hand(d)
    assert report.long_run_sd == pytest.approx(sigma, rel=1e-10)
    assert report.boundary == pytest.approx(anytime_boundary(200, 0.05, 120))
    assert report.lower_bound == pytest.approx(d.mean() - sigma * report.boundary, rel=1e-10)


def test_equal_challenger_fails_with_the_bound_as_first_reason():
    net = skilled(200, 0.002, seed=5)
    decision = gate({"champ": rows(net), "c": rows(skilled(200, 0.002, seed=6))}, mode="anytime")
    report = decision.report("c")
    assert report.verdict is Verdict.FAIL and not decision.passed("c")
    assert report.reasons[0].startswith("Anytime lower bound")
    assert decision.winner is None and "champion stays" in decision.winner_reason


def test_multiplicity_widens_the_anytime_bound():
    champion, challenger = skilled(200, 0.0005, seed=3), skilled(200, 0.002, seed=4)
    alone = evaluate_gate(
        {"champ": rows(champion), "c": rows(challenger)},
        champion="champ",
        challengers=["c"],
        settings=GateSettings(mode="anytime"),
        k_active=1,
        spa_reps=0,
    ).report("c")
    crowded = evaluate_gate(
        {"champ": rows(champion), "c": rows(challenger)},
        champion="champ",
        challengers=["c"],
        settings=GateSettings(mode="anytime"),
        k_active=10,
        spa_reps=0,
    ).report("c")
    assert crowded.k_active == 10
    assert crowded.boundary == pytest.approx(anytime_boundary(200, 0.005, 120))
    assert crowded.lower_bound < alone.lower_bound


def test_better_than_champion_but_no_skill_of_its_own_fails_on_dsr():
    champion, challenger = skilled(300, -0.004, seed=7), skilled(300, 0.0, seed=8)
    report = gate({"champ": rows(champion), "c": rows(challenger)}).report("c")
    assert report.verdict is Verdict.FAIL
    assert report.reasons == (report.rules[-1].detail,)  # only the failing rule's sentence
    assert report.reasons[0].startswith("Deflated Sharpe Ratio") and report.dsr < 0.95
    assert [(r.rule, r.passed) for r in report.rules] == [
        ("min_days", True),
        ("superiority", True),
        ("dsr", False),
    ]
    assert "exceeded the margin" in report.rules[1].detail


def test_margin_must_be_cleared():
    champion, challenger = skilled(300, 0.0005, seed=1), skilled(300, 0.004, seed=2)
    report = gate(
        {"champ": rows(champion), "c": rows(challenger)}, margin=0.003, mode="anytime"
    ).report("c")
    assert (
        report.verdict is Verdict.FAIL
        and "does not exceed the margin 30.00 bps" in (report.reasons[0])
    )


def test_identical_net_is_a_tie_and_never_promotes():
    net = skilled(200, 0.004, seed=9)
    report = gate({"champ": rows(net), "c": rows(net.copy())}).report("c")
    assert report.verdict is Verdict.TIE and report.mean_difference == 0.0
    assert "tie" in report.reasons[0]


def test_constant_nonzero_difference_is_degenerate():
    champion = np.random.default_rng(10).integers(-50, 50, 200) / 1024  # exact in binary
    report = gate({"champ": rows(champion), "c": rows(champion + 1 / 1024)}).report("c")
    assert report.verdict is Verdict.DEGENERATE
    assert "almost surely a bug" in report.reasons[0]


def test_a_small_but_real_spread_is_not_degenerate():
    champion = skilled(200, 0.0005, seed=11)
    challenger = champion + 0.003
    challenger[7] += 1e-6
    assert gate({"champ": rows(champion), "c": rows(challenger)}).report("c").verdict not in (
        Verdict.DEGENERATE,
        Verdict.TIE,
    )


def test_pairs_only_days_both_were_scored_never_forward_filled():
    champion, challenger = skilled(200, 0.001, seed=12), skilled(200, 0.002, seed=13)
    missing = np.r_[10:40]
    kept = np.setdiff1d(np.arange(200), missing)
    champion_rows = rows(champion[kept], days=DAYS[kept])
    report = gate({"champ": champion_rows, "c": rows(challenger)}, mode="anytime").report("c")
    assert report.paired_days == 170 and report.shadow_days == 200
    assert report.mean_difference == pytest.approx(np.mean(challenger[kept] - champion[kept]))
    assert any("170 of the challenger's 200 shadow days" in w for w in report.warnings)


def test_no_warning_when_nearly_all_days_pair():
    champion, challenger = skilled(200, 0.001, seed=12), skilled(200, 0.002, seed=13)
    kept = np.setdiff1d(np.arange(200), np.r_[0:5])
    report = gate({"champ": rows(champion[kept], DAYS[kept]), "c": rows(challenger)}).report("c")
    assert report.paired_days == 195 and report.warnings == ()


def test_comparison_restarts_from_the_champions_first_day():
    champion = skilled(300, 0.0005, seed=14)
    challenger = np.concatenate([skilled(200, 0.01, seed=15), champion[200:] + 1e-5 * 0])
    decision = evaluate_gate(
        {"champ": rows(champion), "c": rows(challenger)},
        champion="champ",
        challengers=["c"],
        settings=GateSettings(),
        since=DAYS[200].date(),
        spa_reps=0,
    )
    assert decision.report("c").paired_days == 100
    assert decision.report("c").verdict is Verdict.TIE
    assert decision.to_dict()["since"] == DAYS[200].date().isoformat()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_challenger_is_refused_with_a_reason(bad):
    challenger = skilled(200, 0.004, seed=16)
    challenger[50] = bad
    decision = gate({"champ": rows(skilled(200, seed=17)), "c": rows(challenger)})
    report = decision.report("c")
    assert report.verdict is Verdict.FAIL
    assert report.reasons[0] == (
        f"Refused: version c has non-finite gross on 1 day(s) (first {DAYS[50]})."
    )
    json.dumps(decision.to_dict(), allow_nan=False)


def test_non_finite_champion_refuses_every_challenger():
    champion = skilled(200, seed=18)
    champion[3] = np.nan
    decision = gate(
        {
            "champ": rows(champion),
            "a": rows(skilled(200, 0.004, seed=19)),
            "b": rows(skilled(200, 0.004, seed=20)),
        }
    )
    assert all(r.verdict is Verdict.FAIL for r in decision.reports)
    assert all("version champ has non-finite" in r.reasons[0] for r in decision.reports)
    assert decision.winner is None and decision.spa_pvalue is None


def test_repeated_day_is_refused():
    frame = rows(skilled(100, seed=21))
    frame = pd.concat([frame, frame.iloc[[5]]])
    report = gate({"champ": rows(skilled(100, seed=22)), "c": frame}).report("c")
    assert report.verdict is Verdict.FAIL and "scored more than once" in report.reasons[0]


def test_missing_version_rows_mean_no_data_not_a_crash():
    report = gate({"champ": rows(skilled(100, seed=23))}, challengers=["ghost"]).report("ghost")
    assert report.verdict is Verdict.INSUFFICIENT_DATA and report.paired_days == 0


def test_fixed_mode_waits_for_the_horizon():
    champion, challenger = skilled(100, 0.0005, seed=1), skilled(100, 0.004, seed=2)
    report = gate({"champ": rows(champion), "c": rows(challenger)}, mode="fixed").report("c")
    assert report.verdict is Verdict.INSUFFICIENT_DATA
    assert report.reasons[0] == "Fixed mode decides on paired day 120; 100 so far."


def test_fixed_mode_bonferroni_adjusts_across_challengers_tried():
    champion, challenger = skilled(150, 0.001, seed=32), skilled(150, 0.0035, seed=132)
    daily = {"champ": rows(champion), "c": rows(challenger)}

    def decide(k_active):
        return evaluate_gate(
            daily,
            champion="champ",
            challengers=["c"],
            k_active=k_active,
            spa_reps=0,
            settings=GateSettings(mode="fixed"),
        ).report("c")

    alone, crowded = decide(1), decide(10)
    assert alone.pvalue == crowded.pvalue and alone.pvalue < 0.05
    assert alone.verdict is Verdict.PASS
    expected = multipletests([crowded.pvalue] + [1.0] * 9, method="bonferroni")[1][0]
    assert crowded.adjusted_pvalue == pytest.approx(expected)
    assert crowded.adjusted_pvalue > 0.05 and crowded.verdict is Verdict.FAIL
    assert "Bonferroni-adjusted" in crowded.reasons[0]


def test_winner_has_the_highest_mean_net():
    champion = skilled(300, 0.0005, seed=40)
    decision = gate(
        {
            "champ": rows(champion),
            "good": rows(skilled(300, 0.004, seed=41)),
            "better": rows(skilled(300, 0.006, seed=42)),
        }
    )
    assert decision.passed("good") and decision.passed("better")
    assert decision.winner == "better"


def test_winner_ties_go_to_lower_cost_then_to_the_champion():
    champion, net = skilled(300, 0.0005, seed=43), skilled(300, 0.005, seed=44)
    cheap = gate(
        {"champ": rows(champion), "a": rows(net, cost=0.001), "b": rows(net.copy(), cost=0.0002)}
    )
    assert cheap.winner == "b"
    same = gate({"champ": rows(champion), "a": rows(net), "b": rows(net.copy())})
    assert same.passed("a") and same.passed("b") and same.winner is None
    assert "incumbency wins ties" in same.winner_reason


def test_first_champion_needs_days_and_skill_of_its_own():
    decision = gate(
        {
            "skilled": rows(skilled(200, 0.004, seed=50)),
            "unskilled": rows(skilled(200, 0.0, seed=51)),
            "new": rows(skilled(30, 0.004, seed=52)),
            "flat": rows(np.full(200, 0.001)),
        },
        champion=None,
        trial_sharpes=[0.0, 0.02, 0.04],
    )
    assert decision.report("skilled").verdict is Verdict.PASS
    assert decision.report("unskilled").verdict is Verdict.FAIL
    assert decision.report("new").verdict is Verdict.INSUFFICIENT_DATA
    assert decision.report("flat").verdict is Verdict.DEGENERATE
    assert decision.winner == "skilled"
    assert decision.report("skilled").mean_difference is None


def test_many_trials_deflate_a_marginal_challenger():
    champion, challenger = skilled(300, -0.003, seed=61), skilled(300, 0.0022, seed=161)
    daily = {"champ": rows(champion), "c": rows(challenger)}

    def verdict(n_trials):
        return evaluate_gate(
            daily,
            champion="champ",
            challengers=["c"],
            n_trials=n_trials,
            spa_reps=0,
            settings=GateSettings(),
            trial_sharpes=[0.0, 0.05, 0.1, 0.15],
        ).report("c")

    few, many = verdict(1), verdict(1000)
    assert few.dsr > many.dsr and few.n_trials == 1 and many.n_trials == 1000
    assert few.verdict is Verdict.PASS and many.verdict is Verdict.FAIL


def test_report_is_json_safe_and_complete():
    champion, challenger = skilled(200, 0.0005, seed=1), skilled(200, 0.004, seed=2)
    decision = gate({"champ": rows(champion), "c": rows(challenger), "d": rows(champion[:10])})
    payload = json.loads(json.dumps(decision.to_dict(), allow_nan=False))
    report = payload["reports"][0]
    assert report["verdict"] == "PASS" and payload["winner"] == "c"
    for key in (
        "paired_days",
        "mean_difference",
        "long_run_sd",
        "lower_bound",
        "k_active",
        "n_trials",
        "dsr",
        "net_sharpe",
        "champion_net_sharpe",
        "mean_turnover",
        "champion_mean_cost",
        "breakeven_cost_bps",
        "dm_statistic",
        "dm_pvalue",
        "spa_pvalue",
        "days_needed",
        "warnings",
        "reasons",
    ):
        assert key in report
    assert report["breakeven_cost_bps"] == pytest.approx(1e4 * np.mean(challenger + 0.0005) / 0.5)
    assert 0 <= payload["spa_pvalue"] <= 1
    assert not decision.passed("unknown")
    with pytest.raises(KeyError, match="no gate report"):
        decision.report("unknown")
