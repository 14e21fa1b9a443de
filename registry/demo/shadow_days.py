"""The demo's shadow days: let market days land until enough can be settled, then score them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine

from registry.config import PodiumConfig
from registry.console import console, fail
from registry.progress_bars import scoring_bar


def land_and_score(settings: PodiumConfig, engine: Engine, *, after: dt.date | None, days: int,
                   why: str) -> bool:
    """Land days until ``days`` of them after ``after`` can be settled, then score them all.
    False when the market had no more days to land."""
    from trainer.dataset import land_days, open_feed

    market = settings.market
    landed = open_feed(settings.datasets_root, market).landed_days()
    have = sum(1 for day in landed if after is None or day > after)
    missing = days + 1 - have  # day t settles once day t+1 has landed
    if missing > 0:
        with console.status(f"landing {missing} market day(s) …"):
            new = land_days(settings.datasets_root, market, missing)
        if new:
            console.print(f"landed {len(new)} day(s): {new[0]} … {new[-1]}")
        if len(new) < missing:
            console.print(f"[yellow]the market has run out of days[/] ({market.n_days} have "
                          f"landed): {have + len(new)} day(s) {why}, not {days + 1}")
    else:
        new = []
        console.print(f"{have} day(s) have landed {why}: none missing")
    score_pending(settings, engine)
    return missing <= 0 or bool(new)


def score_pending(settings: PodiumConfig, engine: Engine) -> None:
    """One shadow run over everything pending; a failure to score is the demo's failure."""
    from shadow.runner import run_shadow

    with scoring_bar("scoring") as report:
        result = run_shadow(settings, engine, progress=report)
    if not result.ran:
        raise fail(f"{result.detail}: is a `registry serve` or `shadow schedule` running on "
                   "this database? Stop it (or wait for its lease to end) and run again")
    broken = [v for v in result.versions if v.error]
    if broken:
        raise fail("; ".join(f"{v.version_id}: {v.error}" for v in broken))
    console.print(f"scored {len(result.versions)} version(s) through {result.last_landed}: "
                  f"{result.settled} new (version, day) score(s), each net of "
                  f"{settings.shadow.portfolio.cost_bps:g} bps per unit of turnover")


def challenge_days(settings: PodiumConfig, first: dt.date | None) -> int:
    """Shadow days to land from ``first`` before the REST promotion: the rest of the market but
    the days kept back for the serving part to land live (a tenth of the shadow window, at
    least 30), never fewer than the gate's horizon."""
    from trainer.market import trading_days

    market = settings.market
    days = [d.date() for d in trading_days(market)]
    window = market.n_days - market.initial_days
    reserve = max(30, window // 10)
    available = sum(1 for day in days if first is None or day >= first) - reserve - 1
    return max(settings.gate.horizon_days, available)
