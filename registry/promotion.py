"""Promoting a challenger: the one path that the REST API (and so ``registry promote``) and the
demo take.

1. **Gather the evidence** (a read session): the scorer's gate runs on the track's settled shadow
   days, outside any write lock; the champion it judged against is noted.
2. **Decide and swap, in one write transaction**: the version is locked; its state must allow a
   promotion (the lifecycle's table) and the champion must be the one expected (the
   compare-and-set: the caller's ``expected_champion``, else the champion the gate judged
   against, so that a promotion landing in between fails with ``champion_changed`` instead of
   promoting on a comparison with a champion that is gone). Then the gate's verdict decides. A
   refusal is audited (who asked, why, the gate's report) with no change of state, and answered
   with ``GateRejected``. A pass, or a forced promotion with a reason, re-checks the bundle's
   integrity, swaps the champion, and appends the audit entry and its outbox event.
3. **Announce**: after the commit, ``announce`` wakes whoever delivers the events (webhooks).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from registry import store
from registry.config import PodiumConfig
from registry.db import read_session, write_session
from registry.errors import ChampionChanged, GateRejected, PodiumError, Unavailable
from registry.integrity import verify_version
from registry.lifecycle import Action, State, next_state
from registry.models import utcnow
from registry.storage import ArtefactStore, artefact_store
from registry.store import NO_CHAMPION, Transition

log = logging.getLogger("registry.promotion")


@dataclass(frozen=True)
class GateOutcome:
    """What the gate decided about one challenger (the scorer computes it; the audit keeps it)."""

    passed: bool
    verdict: str
    reasons: tuple[str, ...] = ()
    report: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        return {"passed": self.passed, "verdict": self.verdict, "reasons": list(self.reasons),
                **self.report}


@dataclass(frozen=True)
class Promotion:
    transition: Transition
    gate: GateOutcome | None  # None: forced, and the gate had nothing to say


def promote(engine: Engine, *, version_id: str, actor: str, reason: str, config: PodiumConfig,
            force: bool = False, expected_champion: str | None = None,
            request_id: str | None = None,
            announce: Callable[[], None] | None = None) -> Promotion:
    """Promote ``version_id`` through the gate (or around it, ``force`` with a reason).

    ``expected_champion``: the id the caller believes is champion now (``NO_CHAMPION`` for
    none yet). Raises ``GateRejected`` (audited), ``InvalidTransition``, ``ChampionChanged``,
    ``IntegrityFailure``, ``NotFound`` or ``Unavailable`` (the gate cannot run).
    """
    if force:
        store.require_reason(reason, "a forced promotion")
    with read_session(engine) as session:
        gate, judged_champion = _gather_evidence(session, version_id=version_id,
                                                 config=config, force=force)
    if expected_champion is None and not force:
        expected_champion = judged_champion
    with write_session(engine) as session:
        transition = promote_version(
            session, version_id=version_id, actor=actor, reason=reason, gate=gate,
            artefacts_root=artefact_store(config), force=force,
            expected_champion=expected_champion, request_id=request_id)
    if announce is not None:
        announce()
    return Promotion(transition, gate)


def promote_version(session: Session, *, version_id: str, actor: str, reason: str,
                    gate: GateOutcome | None, artefacts_root: Path | ArtefactStore,
                    force: bool = False,
                    expected_champion: str | None = None,
                    request_id: str | None = None) -> Transition:
    """Step 2 in the caller's write session: challenger → champion, the old champion → retired,
    or the refusal audited; either way committed. ``expected_champion=None`` skips the
    compare-and-set."""
    if force:
        store.require_reason(reason, "a forced promotion")
    version = store.lock_version(session, version_id)
    target = next_state(Action.PROMOTE, State(version.state), version_id=version_id)
    champion = store.find_champion(session, version.track)
    current_id = champion.version_id if champion else NO_CHAMPION
    if expected_champion is not None and expected_champion != current_id:
        raise ChampionChanged(
            f"expected champion {expected_champion or '(none)'} on track {version.track}, "
            f"but it is {current_id or '(none)'}: someone promoted first; re-check and retry",
            current_champion=current_id or None)
    refusal = None if force else _refusal(gate, version_id=version_id)
    if refusal is not None:
        session.add(store.audit_entry(
            version, Action.PROMOTE_REFUSED, State.CHALLENGER, actor=actor, reason=reason,
            request_id=request_id, gate_report=gate.as_record() if gate else None))
        session.commit()
        raise refusal
    verify_version(artefacts_root, version)
    now = utcnow()
    if champion is not None:
        champion.state = next_state(Action.DISPLACE, State.CHAMPION).value
        champion.updated_at = now
        session.add(champion)
        session.flush()  # free the champion slot before taking it (partial unique index)
    version.state = target.value
    version.updated_at = version.champion_since = now
    session.add(version)
    audit = store.audit_entry(version, Action.PROMOTE, State.CHALLENGER, actor=actor,
                              reason=reason, request_id=request_id, forced=force,
                              displaced=champion, gate_report=gate.as_record() if gate else None)
    session.add(audit)
    store.commit_swap(session, version.track)
    return Transition(Action.PROMOTE, version, champion, audit)


def gate_outcome(session: Session, *, version_id: str, config: PodiumConfig) -> GateOutcome:
    """What the gate says about promoting ``version_id`` now: it must pass on its own and be the
    one challenger the gate prefers."""
    try:
        from registry.evidence import judge_track  # pandas, scipy: on first use
    except ImportError:
        raise Unavailable("the promotion gate is not available on this server",
                          code="gate_unavailable") from None

    version = store.get_version(session, version_id)
    decision, _versions, _daily = judge_track(session, track=version.track, config=config)
    if decision is None or version.state != State.CHALLENGER.value:
        return GateOutcome(False, "NOT_A_CHALLENGER", (f"{version_id} is {version.state}",), {})
    report = decision.report(version_id)
    record: dict[str, Any] = {**report.to_dict(), "winner": decision.winner,
                              "winner_reason": decision.winner_reason}
    reasons = tuple(report.reasons)
    passed = report.passed and decision.winner == version_id
    if report.passed and not passed:
        reasons = (f"passes on its own, but {decision.winner or 'the champion'} is preferred: "
                   f"{decision.winner_reason}", *reasons)
    return GateOutcome(passed, str(report.verdict), reasons, record)


def _gather_evidence(session: Session, *, version_id: str, config: PodiumConfig,
                     force: bool) -> tuple[GateOutcome | None, str | None]:
    """``(the gate's outcome, the champion it judged against)``; ``(None, None)`` for a version
    that is not a challenger (step 2 says why it cannot be promoted)."""
    version = store.get_version(session, version_id)
    if version.state != State.CHALLENGER.value:
        return None, None
    champion = store.find_champion(session, version.track)
    judged = champion.version_id if champion else NO_CHAMPION
    if not force:
        return gate_outcome(session, version_id=version_id, config=config), judged
    try:
        return gate_outcome(session, version_id=version_id, config=config), judged
    except PodiumError as error:
        log.info("no gate report for the forced promotion of %s: %s", version_id, error.detail)
    except Exception:
        log.exception("the gate failed on the forced promotion of %s; promoting without a "
                      "report", version_id)
    return None, judged  # a forced promotion records what the gate said, never depends on it


def _refusal(gate: GateOutcome | None, *, version_id: str) -> GateRejected | None:
    """Why an unforced promotion may not go ahead, or None when the gate passed it."""
    if gate is None:
        return GateRejected(f"no gate decision for {version_id}: score it in shadow first, "
                            "or force the promotion with a reason")
    if gate.passed:
        return None
    because = "; ".join(gate.reasons) or gate.verdict
    return GateRejected(f"the gate refuses {version_id} ({gate.verdict}): {because}",
                        gate=gate.as_record())
