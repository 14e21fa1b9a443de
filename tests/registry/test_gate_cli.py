"""The gate's report in a terminal: a mark, value and threshold per rule, returns in bp."""

from __future__ import annotations

import pytest

from registry.gate_cli import (
    FAIL_MARK,
    INFO_MARK,
    PASS_MARK,
    format_quantity,
    gate_rows,
    print_gate,
)


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (0.00123, "return", "+12.30 bp"),  # a daily return, ×10⁴
    (-0.0005, "fraction", "-5.00 bp"),
    (7.5, "bp", "+7.50 bp"),  # already in basis points
    (60, "days", "60 days"),
    (1234, None, "1,234"),
    (0.0123, "", "0.0123"),
    (0.95, "probability", "0.95"),
    (0.0125, "p-value", "0.0125"),
    (0.00042, "return per day", "+4.20 bp"),
    (120.0, "days", "120 days"),
    (1.5, "sharpe", "1.5 sharpe"),
    (None, "return", "-"),
    ("n/a", "return", "n/a"),
])
def test_format_quantity(value, unit, shown) -> None:
    assert format_quantity(value, unit) == shown


def test_a_report_with_rules_is_shown_rule_by_rule() -> None:
    report = {"verdict": "FAIL", "rules": [
        {"rule": "min_days", "passed": True, "value": 120.0, "threshold": 60.0,
         "unit": "days", "detail": ""},
        {"rule": "lower bound above the margin", "passed": False, "value": -0.00021,
         "threshold": 0.0, "unit": "return", "detail": "anytime-valid bound"},
        {"rule": "Diebold-Mariano (information)", "passed": None, "value": 0.31,
         "threshold": None, "unit": "", "detail": None},
    ], "lower_bound": -0.00021, "pvalue": 0.4}
    assert gate_rows(report) == [
        [PASS_MARK, "enough paired days", "120 days", "60 days", ""],
        [FAIL_MARK, "lower bound above the margin", "-2.10 bp", "+0.00 bp",
         "anytime-valid bound"],
        [INFO_MARK, "Diebold-Mariano (information)", "0.31", "-", ""],
    ]


def test_an_older_report_shows_its_key_statistics_in_bp_not_every_field() -> None:
    report = {"passed": False, "verdict": "FAIL", "reasons": ["no evidence"],
              "version_id": "v2-b-20250630-0badc0de", "paired_days": 90,
              "mean_difference": 0.0002, "lower_bound": -0.0001, "adjusted_pvalue": 0.2,
              "k_active": 3, "n_trials": 4, "dm_statistic": 0.4, "mean_cost": 0.00011}
    assert gate_rows(report) == [
        [INFO_MARK, "paired days", "90 days", "", ""],
        [INFO_MARK, "mean daily net difference vs champion", "+2.00 bp", "", ""],
        [INFO_MARK, "its lower confidence bound", "-1.00 bp", "", ""],
        [INFO_MARK, "p-value, corrected for the challengers tried", "0.2", "", ""],
    ]


def test_print_gate_gives_the_verdict_the_rules_and_the_reasons(capsys) -> None:
    print_gate({"verdict": "INSUFFICIENT_DATA", "version_id": "v1-a-20250630-12345678",
                "reasons": ["12 paired days; 60 needed"], "paired_days": 12,
                "rules": [{"rule": "enough paired days", "passed": False, "value": 12,
                           "threshold": 60, "unit": "days"}]})
    out = capsys.readouterr().out
    assert "gate: INSUFFICIENT_DATA for v1-a-20250630-12345678" in out
    assert f"{FAIL_MARK}" in out and "enough paired days" in out and "60 days" in out
    assert "  - 12 paired days; 60 needed" in out
    print_gate(None)
    assert capsys.readouterr().out == ""
