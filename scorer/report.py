"""The gate's report: a verdict with its reasons and the statistics behind it, per challenger."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from scorer.jsonsafe import json_safe


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    INSUFFICIENT_DATA = "INSUFFICIENT_DATA"
    TIE = "TIE"
    DEGENERATE = "DEGENERATE"


@dataclass(frozen=True)
class RuleCheck:
    """One rule of the gate as applied to one challenger: its mark, value and threshold."""

    rule: str  # stable id: "min_days", "horizon", "data", "superiority", "dsr"
    passed: bool
    value: float | None
    threshold: float | None
    unit: str  # "days", "fraction", "z", "p-value", "probability", ...
    detail: str  # one human sentence


@dataclass(frozen=True)
class ChallengerReport:
    """Why one challenger may or may not replace the champion. Per-day units unless named."""

    version_id: str
    verdict: Verdict
    reasons: tuple[str, ...]  # why not: the failing rules' sentences (a PASS: why it passed)
    paired_days: int  # T: days both the challenger and the champion were scored
    shadow_days: int  # the challenger's scored days in the comparison window
    k_active: int
    n_trials: int
    mean_difference: float | None = None  # d̄: mean daily net(challenger) − net(champion)
    long_run_sd: float | None = None  # σ̂: Newey–West long-run standard deviation of d
    boundary: float | None = None  # anytime, group-sequential: m(T), in units of σ̂
    lower_bound: float | None = None  # anytime, group-sequential: d̄ − σ̂·m(T), against δ
    pvalue: float | None = None  # fixed: one-sided EWC p-value
    adjusted_pvalue: float | None = None  # fixed: Bonferroni-adjusted across k_active
    decided_on_day: int | None = None  # fixed, group-sequential: the paired day that decided
    dsr: float | None = None  # Deflated Sharpe Ratio of the challenger's own net returns
    net_sharpe: float | None = None  # annualised, challenger
    champion_net_sharpe: float | None = None  # annualised, on the same paired days
    mean_net: float | None = None
    champion_mean_net: float | None = None
    mean_turnover: float | None = None
    champion_mean_turnover: float | None = None
    mean_cost: float | None = None
    champion_mean_cost: float | None = None
    breakeven_cost_bps: float | None = None
    champion_breakeven_cost_bps: float | None = None
    dm_statistic: float | None = None  # for information only
    dm_pvalue: float | None = None  # one-sided: the challenger's expected net is higher
    spa_pvalue: float | None = None  # across all challengers; for information only
    days_needed: int | None = None  # more paired days needed at the current effect size
    warnings: tuple[str, ...] = ()
    rules: tuple[RuleCheck, ...] = ()

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    def to_dict(self) -> dict[str, Any]:
        return json_safe(asdict(self))


@dataclass(frozen=True)
class GateDecision:
    """The gate's answer for one track at one moment: a report per challenger and the winner."""

    champion: str | None
    mode: str
    alpha: float
    margin: float
    k_active: int
    n_trials: int
    since: Any
    reports: tuple[ChallengerReport, ...]
    winner: str | None  # the challenger to promote, or None: the champion stays
    winner_reason: str
    spa_pvalue: float | None = None
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def report(self, version_id: str) -> ChallengerReport:
        for report in self.reports:
            if report.version_id == version_id:
                return report
        raise KeyError(f"no gate report for version {version_id!r}")

    def passed(self, version_id: str) -> bool:
        """Whether this challenger passed the gate (unknown versions did not)."""
        return any(r.version_id == version_id and r.passed for r in self.reports)

    def to_dict(self) -> dict[str, Any]:
        since = self.since.isoformat() if hasattr(self.since, "isoformat") else self.since
        return json_safe({**asdict(self), "since": since})
