"""The demo's first champion: the best challenger on its own shadow evidence, crowned through
the promotion service when the gate agrees (the track has no champion to compare with)."""

from __future__ import annotations

from sqlalchemy import Engine

from registry import store
from registry.config import PodiumConfig
from registry.console import console
from registry.db import read_session
from registry.demo.shadow_days import land_and_score
from registry.errors import GateRejected
from registry.models import ModelVersion
from registry.promotion import promote

REASON = "demo: the best challenger on its own shadow evidence becomes the first champion"


def crown_when_evident(settings: PodiumConfig, engine: Engine, *,
                       evidence: int) -> ModelVersion | None:
    """Ask the gate; while no challenger passes on its own, wait ``min_days`` more shadow days
    and ask again, up to twice ``evidence`` days after the training cutoff."""
    days = evidence
    while True:
        champion, refused = _crown(settings, engine)
        if champion is not None or days >= 2 * evidence or not refused:
            return champion
        days = min(days + settings.gate.min_days, 2 * evidence)
        console.print(f"waiting for more evidence: up to {days} shadow days")
        if not land_and_score(settings, engine, after=settings.trainer.train_cutoff,
                              days=days, why="since the training cutoff"):
            return None


def _crown(settings: PodiumConfig, engine: Engine) -> tuple[ModelVersion | None, bool]:
    """``(the champion, whether the gate refused)``: the track's champion if it has one, else
    the gate's winner, promoted."""
    from registry.evidence import judge_track

    with read_session(engine) as session:
        champion = store.find_champion(session, settings.track)
        if champion is not None:
            console.print(f"the track already has a champion, {champion.version_id} (since "
                          f"{store.as_utc(champion.champion_since):%Y-%m-%d %H:%M} UTC): "
                          "keeping it")
            return champion, False
        decision, _, _ = judge_track(session, track=settings.track, config=settings)
    if decision is None or decision.winner is None:
        console.print("[yellow]no first champion[/]: no challenger passes the gate on its own")
        for report in decision.reports if decision else ():
            console.print(f"  {report.version_id}: {report.verdict} after "
                          f"{report.shadow_days} day(s): "
                          f"{report.reasons[0] if report.reasons else ''}", markup=False)
        return None, decision is not None
    try:
        crowned = promote(engine, version_id=decision.winner, actor="demo", reason=REASON,
                          config=settings)
    except GateRejected as refused:
        console.print(f"[yellow]no first champion[/]: {refused.detail}", soft_wrap=True)
        return None, True
    gate = crowned.gate
    console.print(f"[green]crowned[/] {decision.winner} the first champion of {settings.track} "
                  f"(gate {gate.verdict if gate else '-'}; audit #{crowned.transition.audit.id})")
    console.print(f"  {decision.winner_reason}", style="dim", markup=False)
    return crowned.transition.version, False
