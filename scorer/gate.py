"""The promotion gate, exactly as docs/gate.md specifies it.

A challenger passes only with (1) enough paired days, (2) evidence, corrected for the number of
challengers being tried, that its mean daily net beats the champion's by more than the margin,
and (3) a Deflated Sharpe Ratio of its own net returns at or above `min_dsr`. A track without a
champion takes a first champion that passes (1) and (3) on its own net returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from scorer.confidence_sequence import days_needed, mixture_boundary
from scorer.diebold_mariano import diebold_mariano
from scorer.ewc import ewc_test
from scorer.jsonsafe import finite_or_none
from scorer.metrics import breakeven_cost_bps
from scorer.multiplicity import holm_adjust
from scorer.newey_west import newey_west_variance
from scorer.pairing import in_window, paired, refusal
from scorer.report import ChallengerReport, GateDecision, Verdict
from scorer.settings import GateSettings
from scorer.sharpe import TRADING_DAYS, daily_sharpe, deflated_sharpe_ratio, sharpe_moments
from scorer.spa import spa_pvalue

PAIRED_SHARE_WARNING = 0.9


@dataclass(frozen=True)
class _Context:
    settings: GateSettings
    k_active: int
    n_trials: int
    trial_sharpes: tuple[float, ...]

    @property
    def level(self) -> float:
        return self.settings.alpha / self.k_active


@dataclass
class _Assessment:
    """A challenger's statistics before the verdict (fixed mode waits for Holm)."""

    report: ChallengerReport
    early: tuple[Verdict, str] | None = None  # a verdict settled before superiority
    superior: bool | None = None
    superiority_reason: str = ""
    skill_reason: str = ""
    skilled: bool = False
    notes: list[str] = field(default_factory=list)


def evaluate_gate(
    daily: Mapping[str, pd.DataFrame],
    *,
    champion: str | None,
    challengers: Sequence[str],
    settings: GateSettings,
    since: Any = None,
    k_active: int | None = None,
    n_trials: int | None = None,
    trial_sharpes: Sequence[float] | None = None,
    spa_reps: int = 1000,
    spa_seed: int = 0,
) -> GateDecision:
    """Decide, for each challenger, whether it may replace `champion` (None: the track has none).

    `daily` maps version ids to daily rows (gross, turnover, cost, net) indexed by day; `since` is
    the champion's first day as champion (rows before it are ignored). `k_active` defaults to,
    and is never below, the number of challengers given; `n_trials` (challengers ever evaluated on
    the track) likewise. `trial_sharpes` are those trials' per-day net Sharpes for the DSR's
    variance (default: the given challengers'). `spa_reps=0` skips the SPA bootstrap.
    """
    challengers = [vid for vid in dict.fromkeys(challengers) if vid != champion]
    k_active = max(k_active or 0, len(challengers), 1)
    n_trials = max(n_trials or 0, k_active if n_trials is None else len(challengers), 1)
    windows = {vid: in_window(daily.get(vid), since) for vid in [*challengers, champion] if vid}
    refusals = {vid: refusal(vid, rows) for vid, rows in windows.items()}
    if trial_sharpes is None:
        trial_sharpes = [
            daily_sharpe(windows[vid]["net"].to_numpy(dtype=float))
            for vid in challengers
            if refusals[vid] is None
        ]
    context = _Context(settings, k_active, n_trials, tuple(trial_sharpes))
    assessments = [_assess(vid, windows, refusals, champion, context) for vid in challengers]
    adjusted = _holm_if_fixed(assessments, context)
    reports = [_decide(a, adjusted.get(a.report.version_id), context) for a in assessments]
    spa = _spa_across(reports, windows, refusals, champion, settings, spa_reps, spa_seed)
    reports = [replace(r, spa_pvalue=spa) for r in reports]
    winner, winner_reason = _winner(reports, champion)
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


def _assess(
    vid: str,
    windows: Mapping[str, pd.DataFrame],
    refusals: Mapping[str, str | None],
    champion: str | None,
    context: _Context,
) -> _Assessment:
    settings = context.settings
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
        return _Assessment(base, early=(Verdict.FAIL, f"Refused: {refused}."))
    if champion is None:
        return _assess_first_champion(base, own, context)

    mine, theirs = paired(own, windows[champion])
    d = mine["net"].to_numpy(dtype=float) - theirs["net"].to_numpy(dtype=float)
    n_days = len(d)
    report = replace(base, paired_days=n_days, **_side_by_side(mine, theirs))
    warnings = []
    if len(own) and n_days < PAIRED_SHARE_WARNING * len(own):
        warnings.append(
            f"Only {n_days} of the challenger's {len(own)} shadow days are paired with the "
            f"champion ({n_days / len(own):.0%}, under {PAIRED_SHARE_WARNING:.0%})."
        )
    report = replace(report, warnings=tuple(warnings))
    if n_days >= 2 and np.max(d) == np.min(d):
        if d[0] == 0:
            why = f"Its net return equals the champion's on all {n_days} paired days: a tie."
            return _Assessment(replace(report, mean_difference=0.0), early=(Verdict.TIE, why))
        why = (
            f"Its net return differs from the champion's by the same {d[0]:.6g} on all "
            f"{n_days} paired days, which is almost surely a bug."
        )
        return _Assessment(replace(report, mean_difference=float(d[0])), (Verdict.DEGENERATE, why))

    assessment = _Assessment(report)
    if n_days >= 2:
        assessment = _superiority(assessment, d, context)
    if n_days < settings.min_days:
        assessment.early = (
            Verdict.INSUFFICIENT_DATA,
            f"{n_days} paired days with the champion; the gate needs {settings.min_days}.",
        )
    elif settings.mode == "fixed" and n_days < settings.horizon_days:
        assessment.early = (
            Verdict.INSUFFICIENT_DATA,
            f"Fixed mode decides on paired day {settings.horizon_days}; {n_days} so far.",
        )
    return _skill(assessment, own["net"].to_numpy(dtype=float), context)


def _assess_first_champion(
    base: ChallengerReport, own: pd.DataFrame, context: _Context
) -> _Assessment:
    net = own["net"].to_numpy(dtype=float)
    report = replace(base, paired_days=len(net), **_side_by_side(own, None))
    assessment = _Assessment(report, superior=True)
    assessment.superiority_reason = "The track has no champion: no comparison is needed."
    if len(net) >= 2 and np.max(net) == np.min(net):
        why = (
            f"Its net return is the same {net[0]:.6g} on all {len(net)} days, which is almost "
            "surely a bug."
        )
        assessment.early = (Verdict.DEGENERATE, why)
    elif len(net) < context.settings.min_days:
        assessment.early = (
            Verdict.INSUFFICIENT_DATA,
            f"{len(net)} scored days; a first champion needs {context.settings.min_days}.",
        )
    return _skill(assessment, net, context)


def _superiority(assessment: _Assessment, d: np.ndarray, context: _Context) -> _Assessment:
    settings = context.settings
    n_days = len(d)
    mean = float(np.mean(d))
    sigma = math.sqrt(max(float(newey_west_variance(d)), 0.0))
    dm = diebold_mariano(d)
    fields: dict[str, Any] = {
        "mean_difference": mean,
        "long_run_sd": sigma,
        "dm_statistic": finite_or_none(dm.statistic),
        "dm_pvalue": dm.pvalue_greater,
    }
    margin = settings.margin
    if settings.mode == "anytime":
        boundary = float(mixture_boundary(n_days, context.level, settings.horizon_days))
        lower = mean - sigma * boundary
        needed = days_needed(
            mean,
            sigma,
            margin,
            context.level,
            settings.horizon_days,
            from_day=max(n_days, settings.min_days),
        )
        fields |= {"boundary": boundary, "lower_bound": lower}
        fields["days_needed"] = None if needed is None else needed - n_days
        assessment.superior = lower > margin
        relation = "exceeds" if assessment.superior else "does not exceed"
        assessment.superiority_reason = (
            f"Anytime lower bound on the daily net edge {_bps(lower)} {relation} the margin "
            f"{_bps(margin)} (edge {_bps(mean)}, level α/k = {context.level:.4g})."
        )
    else:
        test = ewc_test(d, margin)
        fields["pvalue"] = test.pvalue
        needed = _fixed_days_needed(mean, sigma, margin, context.level)
        if needed is not None:
            target = max(needed, settings.horizon_days, settings.min_days)
            fields["days_needed"] = max(0, target - n_days)
    assessment.report = replace(assessment.report, **fields)
    return assessment


def _skill(assessment: _Assessment, net: np.ndarray, context: _Context) -> _Assessment:
    moments = sharpe_moments(net)
    dsr = finite_or_none(deflated_sharpe_ratio(moments, context.n_trials, context.trial_sharpes))
    assessment.report = replace(assessment.report, dsr=dsr)
    floor = context.settings.min_dsr
    assessment.skilled = dsr is not None and dsr >= floor
    if dsr is None:
        assessment.skill_reason = "Its Deflated Sharpe Ratio is undefined (too few or flat days)."
    else:
        relation = "≥" if assessment.skilled else "<"
        assessment.skill_reason = (
            f"Deflated Sharpe Ratio of its net returns {dsr:.3f} {relation} {floor} "
            f"given {context.n_trials} trial(s)."
        )
    return assessment


def _holm_if_fixed(assessments: list[_Assessment], context: _Context) -> dict[str, float]:
    if context.settings.mode != "fixed":
        return {}
    testable = [a for a in assessments if a.early is None and a.report.pvalue is not None]
    adjusted = holm_adjust([a.report.pvalue for a in testable], context.k_active)
    return {a.report.version_id: float(p) for a, p in zip(testable, adjusted, strict=True)}


def _decide(
    assessment: _Assessment, adjusted_pvalue: float | None, context: _Context
) -> ChallengerReport:
    report = assessment.report
    if adjusted_pvalue is not None:
        assessment.superior = adjusted_pvalue <= context.settings.alpha
        relation = "≤" if assessment.superior else ">"
        assessment.superiority_reason = (
            f"EWC test of a daily net edge above {_bps(context.settings.margin)}: "
            f"Holm-adjusted p = {adjusted_pvalue:.4g} {relation} α = {context.settings.alpha} "
            f"across {context.k_active} challenger(s) (raw p = {report.pvalue:.4g})."
        )
        report = replace(report, adjusted_pvalue=adjusted_pvalue)
    if (
        context.settings.mode == "fixed"
        and assessment.superior is False
        and report.days_needed == 0
    ):
        report = replace(report, days_needed=None)  # the estimate disagrees with the test
    if assessment.early is not None:
        verdict, why = assessment.early
        details = [assessment.superiority_reason, assessment.skill_reason]
        return replace(report, verdict=verdict, reasons=(why, *[d for d in details if d]))
    if assessment.superior and assessment.skilled:
        reasons = (assessment.superiority_reason, assessment.skill_reason)
        return replace(report, verdict=Verdict.PASS, reasons=reasons)
    failing = [assessment.superiority_reason] if not assessment.superior else []
    failing += [assessment.skill_reason] if not assessment.skilled else []
    passing = [assessment.superiority_reason] if assessment.superior else []
    passing += [assessment.skill_reason] if assessment.skilled else []
    return replace(report, verdict=Verdict.FAIL, reasons=tuple(failing + passing))


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


def _fixed_days_needed(mean: float, sigma: float, margin: float, level: float) -> int | None:
    """Normal approximation: T with sqrt(T)(d̄ − δ)/σ̂ ≥ z_{1−α/k} (Holm's first step)."""
    if not mean > margin or not sigma > 0:
        return None
    return math.ceil((norm.ppf(1 - level) * sigma / (mean - margin)) ** 2)


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


def _winner(reports: list[ChallengerReport], champion: str | None) -> tuple[str | None, str]:
    """Highest mean net among those that pass; then lower mean cost; otherwise no change."""
    passing = sorted((r for r in reports if r.passed), key=lambda r: (-r.mean_net, r.mean_cost))
    incumbent = "the champion stays" if champion else "the track keeps no champion"
    if not passing:
        return None, f"No challenger passed the gate: {incumbent}."
    best = passing[0]
    if len(passing) > 1 and (passing[1].mean_net, passing[1].mean_cost) == (
        best.mean_net,
        best.mean_cost,
    ):
        return None, (
            f"{best.version_id} and {passing[1].version_id} tie on mean net and mean cost: "
            f"{incumbent} (incumbency wins ties)."
        )
    return best.version_id, (
        f"{best.version_id} passed with the highest mean daily net ({_bps(best.mean_net)})"
        + (f" of {len(passing)} passing challengers." if len(passing) > 1 else ".")
    )


def _bps(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value * 1e4:.2f} bps"
