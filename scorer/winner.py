"""Which passing challenger replaces the champion: compared on the days all of them were scored."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from scorer.report import ChallengerReport


def choose_winner(
    reports: list[ChallengerReport], windows: Mapping[str, pd.DataFrame], champion: str | None
) -> tuple[str | None, str]:
    """Highest mean net among those that pass, then lower mean cost; otherwise no change.

    Passers are compared on their common days, so that one that ran only in a strong market
    does not beat one that earned more on the same days. Passers with no day in common are
    compared on their own windows (the reason says so).
    """
    passing = [r.version_id for r in reports if r.passed]
    incumbent = "the champion stays" if champion else "the track keeps no champion"
    if not passing:
        return None, f"No challenger passed the gate: {incumbent}."
    days = windows[passing[0]].index
    for vid in passing[1:]:
        days = days.intersection(windows[vid].index)
    common = len(passing) > 1 and len(days) > 0

    def on_days(vid: str, column: str) -> float:
        rows = windows[vid].loc[days] if common else windows[vid]
        return float(rows[column].mean())

    ranked = sorted(passing, key=lambda vid: (-on_days(vid, "net"), on_days(vid, "cost")))
    best = ranked[0]
    if len(ranked) > 1 and all(
        on_days(ranked[1], column) == on_days(best, column) for column in ("net", "cost")
    ):
        return None, (
            f"{best} and {ranked[1]} tie on mean net and mean cost: {incumbent} "
            "(incumbency wins ties)."
        )
    if len(ranked) == 1:
        return best, f"{best} passed with a mean daily net of {_bps(on_days(best, 'net'))}."
    where = (
        f"on the {len(days)} days every passing challenger was scored"
        if common
        else "each on its own days, as the passing challengers share no day"
    )
    return best, (
        f"{best} passed with the highest mean daily net ({_bps(on_days(best, 'net'))}) {where}, "
        f"of {len(ranked)} passing challengers."
    )


def _bps(value: float) -> str:
    return "n/a" if not math.isfinite(value) else f"{value * 1e4:.2f} bps"
