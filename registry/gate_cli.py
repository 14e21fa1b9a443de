"""The gate's report for a terminal: the verdict, then each rule with its mark, value and
threshold (returns in basis points), then the reasons in words.

A report that lists its ``rules`` ({rule, passed, value, threshold, unit, detail}) is shown
rule by rule. An older report without them is shown as its key statistics, in basis points,
never as a dump of every raw field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from registry.console import console, table

PASS_MARK, FAIL_MARK, INFO_MARK = "✓", "✗", "·"
# Units whose values are daily returns (fractions): shown ×10⁴, in basis points.
RETURN_UNITS = {"return", "return per day", "fraction", "daily_return", "daily return",
                "return/day"}
BP_UNITS = {"bp", "bps", "bp/day"}
PLAIN_UNITS = {"", "probability", "p-value", "z"}  # a number that needs no unit after it

# The gate's stable rule ids, in words.
RULE_LABELS = {"min_days": "enough paired days", "superiority": "edge over the champion",
               "dsr": "deflated Sharpe ratio", "data": "usable daily rows",
               "distinct": "distinct from the champion", "horizon": "within the horizon"}

# An older report's statistics worth reading, in order: (field, label, unit).
_KEY_FIELDS = (
    ("paired_days", "paired days", "days"),
    ("days_needed", "more paired days needed", "days"),
    ("mean_difference", "mean daily net difference vs champion", "return"),
    ("lower_bound", "its lower confidence bound", "return"),
    ("adjusted_pvalue", "p-value, corrected for the challengers tried", ""),
    ("pvalue", "p-value", ""),
    ("dsr", "deflated Sharpe ratio", ""),
    ("net_sharpe", "net Sharpe (annualised)", ""),
    ("champion_net_sharpe", "champion's net Sharpe, same days", ""),
    ("mean_net", "mean daily net", "return"),
    ("champion_mean_net", "champion's mean daily net", "return"),
    ("breakeven_cost_bps", "break-even cost", "bp"),
)


def format_quantity(value: Any, unit: str | None) -> str:
    """A rule's value or threshold for reading: returns in bp, counts as integers."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    unit = (unit or "").strip()
    if unit.lower() in RETURN_UNITS:
        return f"{value * 1e4:+.2f} bp"
    if unit.lower() in BP_UNITS:
        return f"{value:+.2f} bp"
    if unit.lower() == "days" or isinstance(value, int):
        return f"{value:,.0f}" + (f" {unit}" if unit else "")
    return f"{value:.3g}" + ("" if unit.lower() in PLAIN_UNITS else f" {unit}")


def gate_rows(report: dict[str, Any]) -> list[list[str]]:
    """``[mark, rule, value, threshold, detail]`` for each rule of the report."""
    rules = report.get("rules")
    if isinstance(rules, list) and rules:
        return [_rule_row(rule) for rule in rules if isinstance(rule, dict)]
    return [[INFO_MARK, label, format_quantity(report.get(key), unit), "", ""]
            for key, label, unit in _KEY_FIELDS if report.get(key) is not None]


def _rule_row(rule: dict[str, Any]) -> list[str]:
    passed = rule.get("passed")
    mark = PASS_MARK if passed is True else FAIL_MARK if passed is False else INFO_MARK
    unit = rule.get("unit")
    name = str(rule.get("rule", "?"))
    return [mark, RULE_LABELS.get(name, name), format_quantity(rule.get("value"), unit),
            format_quantity(rule.get("threshold"), unit), str(rule.get("detail") or "")]


def print_gate(report: dict[str, Any] | None) -> None:
    """The verdict, a row per rule, then the gate's reasons, one a line."""
    if not report:
        return
    verdict = report.get("verdict", "?")
    subject = report.get("version_id")
    title = f"gate: {verdict}" + (f" for {subject}" if subject else "")
    console.print(title, markup=False, soft_wrap=True)
    console.print(table(None, ["", "rule", "value", "threshold", "detail"], gate_rows(report)))
    for reason in _strings(report.get("reasons")):
        console.print(f"  - {reason}", markup=False)


def _strings(values: Any) -> Iterable[str]:
    return [str(v) for v in values] if isinstance(values, list | tuple) else []
