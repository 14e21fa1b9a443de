"""The leaderboard, assembled from plain values: no database here (the caller reads it).

Rows: the champion first, then challengers by verdict (PASS first) and mean net, retired last.
States are the registry's lifecycle states as strings: "champion", "challenger", "retired".
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from scorer.jsonsafe import json_safe
from scorer.metrics import VersionMetrics, cumulative_net, version_metrics
from scorer.report import ChallengerReport, GateDecision, Verdict

STATE_ORDER = {"champion": 0, "challenger": 1, "retired": 2}
VERDICT_ORDER = {
    Verdict.PASS: 0,
    Verdict.FAIL: 1,
    Verdict.INSUFFICIENT_DATA: 2,
    Verdict.TIE: 3,
    Verdict.DEGENERATE: 4,
}


@dataclass(frozen=True)
class VersionEntry:
    """What the registry knows about a version that the leaderboard shows."""

    version_id: str
    state: str
    spec: str
    train_cutoff: dt.date | None = None


@dataclass(frozen=True)
class LeaderboardRow:
    version_id: str
    state: str
    spec: str
    train_cutoff: dt.date | None
    metrics: VersionMetrics
    verdict: Verdict | None  # challengers only
    reason: str | None  # the verdict's first reason
    report: ChallengerReport | None

    def to_dict(self) -> dict[str, Any]:
        return json_safe(
            {
                "version_id": self.version_id,
                "state": self.state,
                "spec": self.spec,
                "train_cutoff": self.train_cutoff.isoformat() if self.train_cutoff else None,
                "metrics": self.metrics.to_dict(),
                "verdict": self.verdict,
                "reason": self.reason,
                "report": self.report.to_dict() if self.report else None,
            }
        )


def build_leaderboard(
    versions: Sequence[VersionEntry],
    daily: Mapping[str, pd.DataFrame],
    decision: GateDecision | None,
) -> list[LeaderboardRow]:
    """One row per version, in leaderboard order; a version without rows has zero days."""
    rows = []
    for entry in versions:
        report = _report_for(decision, entry.version_id) if entry.state == "challenger" else None
        rows.append(
            LeaderboardRow(
                version_id=entry.version_id,
                state=entry.state,
                spec=entry.spec,
                train_cutoff=entry.train_cutoff,
                metrics=version_metrics(daily.get(entry.version_id, _empty_rows())),
                verdict=report.verdict if report else None,
                reason=report.reasons[0] if report and report.reasons else None,
                report=report,
            )
        )
    return sorted(rows, key=_leaderboard_order)


def cumulative_net_by_version(daily: Mapping[str, pd.DataFrame]) -> dict[str, pd.Series]:
    """Each version's cumulative net return by day, for the chart."""
    return {vid: cumulative_net(rows.sort_index()) for vid, rows in daily.items()}


def _report_for(decision: GateDecision | None, version_id: str) -> ChallengerReport | None:
    if decision is None:
        return None
    return next((r for r in decision.reports if r.version_id == version_id), None)


def _leaderboard_order(row: LeaderboardRow) -> tuple:
    mean_net = row.metrics.mean_net
    return (
        STATE_ORDER.get(row.state, len(STATE_ORDER)),
        VERDICT_ORDER.get(row.verdict, len(VERDICT_ORDER)) if row.verdict else len(VERDICT_ORDER),
        mean_net is None,
        -(mean_net or 0.0),
        row.version_id,
    )


def _empty_rows() -> pd.DataFrame:
    return pd.DataFrame(columns=["gross", "turnover", "cost", "net", "rank_ic"], dtype=float)
