"""The promotion gate (docs/gate.md).

A challenger passes only with (1) enough paired days, (2) evidence, corrected for the number of
challengers tried since the champion's crowning, that its mean daily net beats the champion's by
more than the margin (`scorer.superiority`, in the configured mode), and (3) a Deflated Sharpe
Ratio of its own net returns at or above `min_dsr`. A track without a champion takes a first
champion that passes (1) and (3) on its own net returns. Every rule's mark, value and threshold
goes into the report; `reasons` hold the sentences of the rules that failed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from scorer.diebold_mariano import diebold_mariano
from scorer.jsonsafe import finite_or_none
from scorer.metrics import breakeven_cost_bps
from scorer.pairing import check_pairable, constant_verdict, in_window, paired, refusal
from scorer.report import ChallengerReport, GateDecision, RuleCheck, Verdict
from scorer.settings import GateSettings
from scorer.sharpe import TRADING_DAYS, daily_sharpe, deflated_sharpe_ratio, sharpe_moments
from scorer.spa import spa_pvalue
from scorer.superiority import judge_superiority
from scorer.winner import choose_winner

PAIRED_SHARE_WARNING = 0.9


@dataclass(frozen=True)
class _Family:
    """The family of comparisons one evaluation makes: its settings, how many challengers share
    α (``k_active``) and how many were tried (``n_trials``, their Sharpes for the DSR)."""

    settings: GateSettings
    k_active: int
    n_trials: int
    trial_sharpes: tuple[float, ...]

    @property
    def level(self) -> float:
        return self.settings.alpha / self.k_active


def evaluate_gate(
    daily: Mapping[str, pd.DataFrame],
    *,
    champion: str | None,
    challengers: Sequence[str],
    settings: GateSettings,
    since: Any = None,
    tried: Sequence[str] = (),
    k_active: int | None = None,
    n_trials: int | None = None,
    trial_sharpes: Sequence[float] | None = None,
    spa_reps: int = 1000,
    spa_seed: int = 0,
) -> GateDecision:
    """Decide, for each challenger, whether it may replace `champion` (None: the track has none).

    `daily` maps version ids to daily rows (gross, turnover, cost, net) indexed by day; `since` is
    the champion's first day as champion (rows before it are ignored). `tried` names the other
    versions tried as challengers on the track (retired ones included): those scored in the
    window count towards k, the number of challengers the superiority rule corrects for, with
    the given challengers; `k_active` only sets a floor under k. `n_trials` (challengers ever
    evaluated on the track) defaults to k. `trial_sharpes` are those trials' per-day net Sharpes
    for the DSR's variance (default: the given challengers'). `spa_reps=0` skips the SPA
    bootstrap. Raises ValueError when the versions' days cannot be paired (index types differ).
    """
    challengers = [vid for vid in dict.fromkeys(challengers) if vid != champion]
    others = [vid for vid in dict.fromkeys(tried) if vid != champion and vid not in challengers]
    check_pairable({vid: daily[vid] for vid in [*challengers, *others, champion] if vid in daily})
    windows = {vid: in_window(daily.get(vid), since) for vid in [*challengers, champion] if vid}
    tried_in_window = [vid for vid in others if len(in_window(daily.get(vid), since))]
    k_active = max(k_active or 0, len(challengers) + len(tried_in_window), 1)
    n_trials = max(n_trials or 0, k_active if n_trials is None else len(challengers), 1)
    refusals = {vid: refusal(vid, rows) for vid, rows in windows.items()}
    if trial_sharpes is None:
        trial_sharpes = [
            daily_sharpe(windows[vid]["net"].to_numpy(dtype=float))
            for vid in challengers
            if refusals[vid] is None
        ]
    context = _Family(settings, k_active, n_trials, tuple(trial_sharpes))
    reports = [_judge(vid, windows, refusals, champion, context) for vid in challengers]
    spa = _spa_across(reports, windows, refusals, champion, settings, spa_reps, spa_seed)
    reports = [replace(r, spa_pvalue=spa) for r in reports]
    winner, winner_reason = choose_winner(reports, windows, champion)
    return GateDecision(
        champion=champion,
        mode=settings.mode,
        alpha=settings.alpha,
        margin=settings.margin,
        k_active=k_active,
        n_trials=n_trials,
        since=since,
        reports=tuple(reports),
        winner=winner,
        winner_reason=winner_reason,
        spa_pvalue=spa,
        warnings=tuple(r for vid, r in refusals.items() if r is not None and vid == champion),
    )


def _judge(
    vid: str,
    windows: Mapping[str, pd.DataFrame],
    refusals: Mapping[str, str | None],
    champion: str | None,
    context: _Family,
) -> ChallengerReport:
    own = windows[vid]
    base = ChallengerReport(
        version_id=vid,
        verdict=Verdict.FAIL,
        reasons=(),
        paired_days=0,
        shadow_days=len(own),
        k_active=context.k_active,
        n_trials=context.n_trials,
    )
    refused = refusals[vid] or (refusals.get(champion) if champion else None)
    if refused:
        why = f"Refused: {refused}."
        return replace(base, reasons=(why,), rules=(RuleCheck("data", False, None, None, "", why),))
    if champion is None:
        return _judge_first_champion(base, own, context)

    mine, theirs = paired(own, windows[champion])
    mine_net, their_net = mine["net"].to_numpy(dtype=float), theirs["net"].to_numpy(dtype=float)
    d = mine_net - their_net
    n_days = len(d)
    report = replace(base, paired_days=n_days, **_side_by_side(mine, theirs))
    if len(own) and n_days < PAIRED_SHARE_WARNING * len(own):
        report = replace(
            report,
            warnings=(
                f"Only {n_days} of the challenger's {len(own)} shadow days are paired with the "
                f"champion ({n_days / len(own):.0%}, under {PAIRED_SHARE_WARNING:.0%}).",
            ),
        )
    constant = constant_verdict(d, scale=_scale(mine_net, their_net))
    if constant is not None:
        verdict, mean, why = constant
        if verdict is Verdict.TIE:
            why = f"Its net return equals the champion's on all {n_days} paired days: a tie."
        else:
            why = (
                f"Its net return differs from the champion's by the same {mean:.6g} on all "
                f"{n_days} paired days, which is almost surely a bug."
            )
        rule = RuleCheck("distinct", False, None, None, "", why)
        return replace(report, verdict=verdict, mean_difference=mean, reasons=(why,), rules=(rule,))

    checks = [_min_days_check(n_days, context.settings.min_days, "paired days with the champion")]
    if n_days >= 2:
        superiority = judge_superiority(
            d, settings=context.settings, level=context.level, k_tried=context.k_active
        )
        dm = diebold_mariano(d)
        report = replace(
            report,
            **superiority.fields,
            dm_statistic=finite_or_none(dm.statistic),
            dm_pvalue=dm.pvalue_greater,
        )
        checks.append(superiority.check)
    report, skill = _skill(report, own["net"].to_numpy(dtype=float), context)
    return _verdict(report, [*checks, skill], context)


def _judge_first_champion(
    base: ChallengerReport, own: pd.DataFrame, context: _Family
) -> ChallengerReport:
    net = own["net"].to_numpy(dtype=float)
    report = replace(base, paired_days=len(net), **_side_by_side(own, None))
    constant = constant_verdict(net, scale=_scale(net))
    if constant is not None:
        why = (
            f"Its net return is the same {net[0]:.6g} on all {len(net)} days, which is almost "
            "surely a bug."
        )
        rule = RuleCheck("distinct", False, None, None, "", why)
        return replace(report, verdict=Verdict.DEGENERATE, reasons=(why,), rules=(rule,))
    checks = [_min_days_check(len(net), context.settings.min_days, "scored days")]
    report, skill = _skill(report, net, context)
    return _verdict(report, [*checks, skill], context)


def _min_days_check(n_days: int, min_days: int, what: str) -> RuleCheck:
    passed = n_days >= min_days
    detail = f"{n_days} {what}; the gate needs {min_days}."
    return RuleCheck("min_days", passed, float(n_days), float(min_days), "days", detail)


def _verdict(
    report: ChallengerReport, checks: list[RuleCheck], context: _Family
) -> ChallengerReport:
    failing = [check for check in checks if not check.passed]
    if not failing:
        verdict = Verdict.PASS
    elif failing[0].rule == "min_days" or _awaiting_horizon(report, context):
        verdict = Verdict.INSUFFICIENT_DATA
    else:
        verdict = Verdict.FAIL
    shown = checks if verdict is Verdict.PASS else failing
    return replace(
        report, verdict=verdict, reasons=tuple(c.detail for c in shown), rules=tuple(checks)
    )


def _awaiting_horizon(report: ChallengerReport, context: _Family) -> bool:
    """Fixed mode before its decision day: not enough data yet, whatever else holds."""
    return context.settings.mode == "fixed" and report.decided_on_day is None


def _skill(
    report: ChallengerReport, net: np.ndarray, context: _Family
) -> tuple[ChallengerReport, RuleCheck]:
    moments = sharpe_moments(net)
    dsr = finite_or_none(deflated_sharpe_ratio(moments, context.n_trials, context.trial_sharpes))
    floor = context.settings.min_dsr
    passed = dsr is not None and dsr >= floor
    if dsr is None:
        detail = "Its Deflated Sharpe Ratio is undefined (too few or flat days)."
    else:
        detail = (
            f"Deflated Sharpe Ratio of its net returns {dsr:.3f} {'≥' if passed else '<'} "
            f"{floor} given {context.n_trials} trial(s)."
        )
    return replace(report, dsr=dsr), RuleCheck("dsr", passed, dsr, floor, "probability", detail)


def _scale(*series: np.ndarray) -> float:
    """The size of the returns compared: the largest absolute value among them."""
    return max((float(np.max(np.abs(s))) for s in series if len(s)), default=0.0)


def _side_by_side(mine: pd.DataFrame, theirs: pd.DataFrame | None) -> dict[str, Any]:
    """Net Sharpe, mean net, turnover, cost and breakeven of both, on the same days."""
    fields: dict[str, Any] = {}
    for prefix, rows in (("", mine), ("champion_", theirs)):
        if rows is None or len(rows) == 0:
            continue
        mean_turnover = float(rows["turnover"].mean())
        fields |= {
            f"{prefix}net_sharpe": finite_or_none(
                daily_sharpe(rows["net"].to_numpy(dtype=float)) * math.sqrt(TRADING_DAYS)
            ),
            f"{prefix}mean_net": float(rows["net"].mean()),
            f"{prefix}mean_turnover": mean_turnover,
            f"{prefix}mean_cost": float(rows["cost"].mean()),
            f"{prefix}breakeven_cost_bps": breakeven_cost_bps(
                float(rows["gross"].mean()), mean_turnover
            ),
        }
    return fields


def _spa_across(
    reports: list[ChallengerReport],
    windows: Mapping[str, pd.DataFrame],
    refusals: Mapping[str, str | None],
    champion: str | None,
    settings: GateSettings,
    reps: int,
    seed: int,
) -> float | None:
    """Hansen's SPA p-value over the challengers with enough days, on their common days."""
    if reps <= 0 or (champion is not None and refusals.get(champion)):
        return None
    chosen = [
        r.version_id
        for r in reports
        if r.paired_days >= settings.min_days and refusals[r.version_id] is None
    ]
    if not chosen:
        return None
    days = windows[chosen[0]].index
    for vid in [*chosen[1:], *([champion] if champion else [])]:
        days = days.intersection(windows[vid].index)
    if len(days) < max(settings.min_days, 3):
        return None
    days = days.sort_values()
    benchmark = windows[champion].loc[days, "net"].to_numpy(dtype=float) if champion else 0.0
    d = np.column_stack(
        [windows[vid].loc[days, "net"].to_numpy(dtype=float) - benchmark for vid in chosen]
    )
    return spa_pvalue(d, reps=reps, seed=seed)
