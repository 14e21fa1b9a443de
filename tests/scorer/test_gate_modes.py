"""The group-sequential mode's decisions, and the per-rule report every mode gives."""

import json

import numpy as np

from scorer.report import RuleCheck, Verdict
from scorer.superiority import group_sequential_boundary
from tests.scorer.test_gate import gate, rows, skilled


def test_group_sequential_passes_on_the_first_crossing_and_the_decision_stands():
    champion = skilled(300, 0.0005, seed=1)
    challenger = np.r_[skilled(150, 0.004, seed=2), skilled(150, -0.01, seed=3)]
    early = gate({"champ": rows(champion[:100]), "c": rows(challenger[:100])}).report("c")
    late = gate({"champ": rows(champion), "c": rows(challenger)}).report("c")
    assert early.verdict is Verdict.PASS and early.decided_on_day is not None
    # the edge later reverses; the comparison was decided and is not tested again
    assert late.decided_on_day == early.decided_on_day
    assert late.lower_bound == early.lower_bound and late.rules[1].passed
    assert "the decision stands" in late.rules[1].detail


def test_group_sequential_looks_every_day_against_its_own_boundary():
    champion, challenger = skilled(120, 0.0005, seed=4), skilled(120, 0.0025, seed=5)
    report = gate({"champ": rows(champion), "c": rows(challenger)}).report("c")
    day = report.decided_on_day
    d = challenger - champion
    assert report.boundary == group_sequential_boundary(0.05, 60, 120, day)
    assert report.mean_difference == np.mean(d[:day])
    for t in range(60, day):  # no earlier look crossed
        report_then = gate({"champ": rows(champion[:t]), "c": rows(challenger[:t])}).report("c")
        assert not report_then.rules[1].passed and report_then.decided_on_day is None


def test_group_sequential_without_a_crossing_fails_at_the_horizon_for_good():
    net = skilled(200, 0.002, seed=7)
    challenger = net + skilled(200, 0.0, sd=0.004, seed=8)
    before = gate({"champ": rows(net[:100]), "c": rows(challenger[:100])}).report("c")
    after = gate({"champ": rows(net), "c": rows(challenger)}).report("c")
    assert before.verdict is Verdict.FAIL and before.decided_on_day is None
    assert before.days_needed is None or before.days_needed > 0
    assert after.verdict is Verdict.FAIL and after.decided_on_day == 120
    assert after.days_needed is None
    assert "never cleared the margin" in after.reasons[0]


def test_every_rule_carries_its_mark_value_and_threshold():
    champion, challenger = skilled(200, 0.0005, seed=1), skilled(200, 0.004, seed=2)
    report = gate({"champ": rows(champion), "c": rows(challenger)}).report("c")
    assert report.verdict is Verdict.PASS
    assert [rule.rule for rule in report.rules] == ["min_days", "superiority", "dsr"]
    min_days, superiority, dsr = report.rules
    assert min_days == RuleCheck(
        "min_days",
        True,
        200.0,
        60.0,
        "days",
        "200 paired days with the champion; the gate needs 60.",
    )
    assert superiority.value == report.lower_bound and superiority.threshold == 0.0
    assert dsr.value == report.dsr and dsr.threshold == 0.95 and dsr.unit == "probability"
    payload = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert payload["rules"][2] == {
        "rule": "dsr",
        "passed": True,
        "value": report.dsr,
        "threshold": 0.95,
        "unit": "probability",
        "detail": dsr.detail,
    }


def test_reasons_of_a_fail_are_only_the_failing_rules():
    champion, challenger = skilled(40, 0.0005, seed=1), skilled(40, 0.004, seed=2)
    report = gate({"champ": rows(champion), "c": rows(challenger)}).report("c")
    assert report.verdict is Verdict.INSUFFICIENT_DATA
    failing = [rule.detail for rule in report.rules if not rule.passed]
    assert report.reasons == tuple(failing)
    assert report.reasons[0] == "40 paired days with the champion; the gate needs 60."


def test_fixed_mode_before_its_horizon_is_insufficient_data_whatever_else_holds():
    champion, challenger = skilled(100, 0.0005, seed=1), skilled(100, 0.004, seed=2)
    report = gate({"champ": rows(champion), "c": rows(challenger)}, mode="fixed").report("c")
    assert report.verdict is Verdict.INSUFFICIENT_DATA and report.decided_on_day is None
    assert [r.rule for r in report.rules if not r.passed] == ["superiority"]
